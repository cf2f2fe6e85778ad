"""Background jobs (fine-tuning, evaluation) that outlive the page that started them.

A job runs in its own thread, reports progress and events (loss rows, graded
items) that any page can read back by job id, and stops when asked at the next
point its work function checks. One job of each kind runs at a time, so a
second user gets a clear message instead of a second copy of the model.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)


class JobBusyError(RuntimeError):
    """Another job of the same kind is still running."""


@dataclass
class Job:
    """One background run; its work function fills `progress`, `events` and `result`."""

    kind: str
    description: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = QUEUED
    done: int = 0
    total: int = 0
    events: list[dict] = field(default_factory=list)
    result: dict = field(default_factory=dict)
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    # Details of the request that a reloaded page shows again, such as the training file; never changed.
    request: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def report(self, done: int | None = None, total: int | None = None, event: dict | None = None) -> None:
        """Record progress and an optional event; safe to call from the worker thread."""
        with self._lock:
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            if event is not None:
                self.events.append(event)

    def snapshot(self) -> dict:
        """Return a consistent copy of the job's public state for a page to render."""
        with self._lock:
            return {
                "id": self.id, "kind": self.kind, "description": self.description, "status": self.status,
                "done": self.done, "total": self.total, "events": list(self.events), "result": dict(self.result),
                "error": self.error, "started_at": self.started_at, "finished_at": self.finished_at,
                "request": dict(self.request),
            }

    @property
    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    @property
    def finished(self) -> bool:
        with self._lock:
            return self.status in FINISHED


class JobRegistry:
    """Starts jobs in threads, one running job per kind, and finds them by id."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._guard = threading.Lock()

    def start(self, kind: str, description: str, work: Callable[[Job], dict], request: dict | None = None) -> Job:
        """Run `work(job)` in a thread; its return value becomes `job.result`.

        `request` is kept as `job.request` for pages that reattach to the job.

        Raises JobBusyError when a job of the same kind is still running.
        """
        with self._guard:
            running = self._active_unguarded(kind)
            if running is not None:
                raise JobBusyError(f"Another {kind} job ({running.description}) is already running; wait for it "
                                   "to finish or stop it first.")
            job = Job(kind=kind, description=description, request=dict(request or {}))
            self._jobs[job.id] = job
        # NOTE: this thread runs outside any spaces.GPU call, so on a ZeroGPU Space the job gets no GPU.
        # Fine-tuning and evaluation there need a Space with a dedicated GPU.
        thread = threading.Thread(target=self._run, args=(job, work), name=f"{kind}-{job.id}", daemon=True)
        thread.start()
        return job

    def _run(self, job: Job, work: Callable[[Job], dict]) -> None:
        with job._lock:
            job.status = RUNNING
        logger.info("job %s (%s) started: %s", job.id, job.kind, job.description)
        try:
            result = work(job) or {}
            finished_at = time.time()
            # The final status and finished_at change together, so no reader sees a finished job without an end time.
            with job._lock:
                job.result = result
                job.status = STOPPED if job.should_stop else DONE
                job.finished_at = finished_at
        except Exception as error:  # noqa: BLE001 - a job's failure is reported, never lost
            logger.error("job %s (%s) failed: %s\n%s", job.id, job.kind, error, traceback.format_exc())
            finished_at = time.time()
            with job._lock:
                job.error = str(error) or type(error).__name__
                job.status = FAILED
                job.finished_at = finished_at
        logger.info("job %s (%s) ended: %s", job.id, job.kind, job.snapshot()["status"])

    def get(self, job_id: str | None) -> Job | None:
        if not job_id:
            return None
        with self._guard:
            return self._jobs.get(job_id)

    def active(self, kind: str) -> Job | None:
        """Return the running or queued job of this kind, if any."""
        with self._guard:
            return self._active_unguarded(kind)

    def _active_unguarded(self, kind: str) -> Job | None:
        # The caller holds self._guard, which is not reentrant.
        for job in self._jobs.values():
            if job.kind == kind and not job.finished:
                return job
        return None

    def latest(self, kind: str) -> Job | None:
        with self._guard:
            jobs = [job for job in self._jobs.values() if job.kind == kind]
        return max(jobs, key=lambda job: job.started_at) if jobs else None

    def stop(self, job_id: str) -> bool:
        """Ask a job to stop at its next check; return False when there is no such running job."""
        job = self.get(job_id)
        if job is None or job.finished:
            return False
        job.stop_event.set()
        return True
