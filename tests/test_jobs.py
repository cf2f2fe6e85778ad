"""The background job registry: one running job per kind, status and end time kept consistent."""

import threading
import types

import pytest

from llada_cot import jobs
from llada_cot.jobs import DONE, FAILED, FINISHED, JobBusyError, JobRegistry


def wait_for(job, timeout=10.0):
    deadline = jobs.time.monotonic() + timeout
    while not job.finished and jobs.time.monotonic() < deadline:
        jobs.time.sleep(0.01)
    assert job.finished, f"job {job.id} did not finish within {timeout} s"


@pytest.mark.parametrize("kind", ["evaluate", "train"])
def test_busy_message_reads_correctly(kind):
    registry = JobRegistry()
    release = threading.Event()
    first = registry.start(kind, "first run", lambda job: release.wait(10) and {})
    try:
        with pytest.raises(JobBusyError) as caught:
            registry.start(kind, "second run", lambda job: {})
    finally:
        release.set()
        wait_for(first)
    message = str(caught.value)
    assert message.startswith(f"Another {kind} job (first run) is already running")
    assert " A " not in f" {message}"


@pytest.mark.parametrize(("work", "final_status"), [
    (lambda job: {"value": 1}, DONE),
    (lambda job: 1 / 0, FAILED),
])
def test_finished_status_comes_with_end_time(monkeypatch, work, final_status):
    registry = JobRegistry()
    seen = []
    real_time = jobs.time

    def observing_time():
        # Called by the worker as the job ends: whatever a page could read now must be consistent.
        if threading.current_thread().name.startswith("probe-"):
            job = registry.latest("probe")
            if job is not None:
                seen.append(job.snapshot())
        return real_time.time()

    monkeypatch.setattr(jobs, "time", types.SimpleNamespace(time=observing_time, monotonic=real_time.monotonic,
                                                             sleep=real_time.sleep))
    job = registry.start("probe", "one run", work)
    wait_for(job)
    assert seen, "the worker never read the clock"
    for snapshot in seen:
        if snapshot["status"] in FINISHED:
            assert snapshot["finished_at"] is not None, snapshot
    final = job.snapshot()
    assert final["status"] == final_status
    assert final["finished_at"] is not None
