"""Background jobs keep running after the page that started them goes away, and a new page shows them.

A reloaded page is a new Gradio session, so each test starts a job from one
gradio_client session and follows it from a second one.
"""

from __future__ import annotations

import json
import re
import time
import zipfile

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from llada_cot.synthetic import make_splits
from llada_cot.ui import evaluate as evaluate_tab
from llada_cot.ui import finetune as finetune_tab
from llada_cot.ui.runtime import Runtime

from page_api import arguments, serve, wait_until

ADAPTER = "long-run"
# A step limit that the test never reaches: it stops the job itself.
TRAINING = dict(ft_mode="whole", ft_lora_r=4, ft_lora_alpha=8, ft_lora_dropout=0.0, ft_targets=["q_proj", "v_proj"],
                ft_learning_rate=1e-3, ft_max_steps=100_000, ft_epochs=1, ft_batch_size=4,
                ft_gradient_accumulation=1, ft_warmup_ratio=0.0, ft_save_steps=1000, ft_seed=0,
                ft_pad_response_to=0, ft_gradient_checkpointing=False)
# Long enough generations that 40 items outlast the checks below.
SLOW_SAMPLER = dict(gen_length=64, steps=64, block_length=8, temperature=0.0, cfg_scale=0.0,
                    remasking="low_confidence", seed="", threshold=0.0, cache="none", constraints="")
TIMEOUT_S = 120


@pytest.fixture
def runtime(bundled, tmp_path):
    return Runtime(loaded=bundled, workspace=tmp_path / "workspace")


@pytest.fixture
def training_data(tmp_path):
    train, _ = make_splits(12, 1, seed=5)
    path = tmp_path / "twelve.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in train), encoding="utf-8")
    return path


def reported_step(status: str) -> int | None:
    found = re.search(r"step (\d+) of (\d+)", status)
    return int(found.group(1)) if found else None


def test_second_session_follows_training(runtime, training_data):
    with serve(runtime) as first:
        first.predict(*arguments(first, "/finetune_validate", ft_upload=handle_file(str(training_data)),
                                 ft_mode="whole"), api_name="/finetune_validate")
        first.predict(*arguments(first, "/finetune_start", ft_adapter_name=ADAPTER, ft_resume=False,
                                 ft_overwrite=False, **TRAINING), api_name="/finetune_start")
        job = runtime.jobs.latest(finetune_tab.JOB_KIND)
        wait_until(lambda: job.snapshot()["done"] >= 1, TIMEOUT_S, "the first training step")
        first.close()  # the page that started the job is gone

        second = Client(first.src, verbose=False)
        status, plot, _ = second.predict(api_name="/finetune_status")
        assert "Running" in status, status
        assert f"adapter {ADAPTER} on" in status
        first_step = reported_step(status)
        assert first_step is not None, status
        assert first_step >= 1
        assert "of 100000" in status

        # Polls return only what changed, so keep polling until a later step and the loss plot arrive.
        later_step, loss_plot = first_step, None
        deadline = time.monotonic() + TIMEOUT_S
        while (later_step <= first_step or loss_plot is None) and time.monotonic() < deadline:
            time.sleep(0.3)
            status, plot, _ = second.predict(api_name="/finetune_status")
            if isinstance(status, str):
                later_step = reported_step(status) or later_step
            if isinstance(plot, dict) and plot.get("type") == "plotly":
                loss_plot = plot
        assert later_step > first_step, "the second session saw no progress"
        assert loss_plot is not None, "the second session got no loss plot"
        assert not job.finished

        second.predict(api_name="/finetune_stop")
        wait_until(lambda: job.finished, TIMEOUT_S, "the stopped training job")
        status, _, download = second.predict(api_name="/finetune_status")
        assert "Stopped" in status, status
        assert f"Adapter **{ADAPTER}** saved at step" in status
        assert download["visible"] is True
        with zipfile.ZipFile(download["value"]) as archive:
            assert f"{ADAPTER}/adapter_config.json" in archive.namelist()
    assert ADAPTER in runtime.adapter_names()


def test_second_session_sees_running_evaluation(runtime):
    with serve(runtime) as first:
        first.predict(*arguments(first, "/evaluate", eval_upload=None, eval_dataset="test.jsonl", adapter="",
                                 eval_batch_size=2, eval_limit=40, eval_run_name="long-eval", eval_resume=False,
                                 **SLOW_SAMPLER), api_name="/evaluate")
        job = runtime.jobs.latest(evaluate_tab.JOB_KIND)
        wait_until(lambda: job.snapshot()["done"] >= 2, TIMEOUT_S, "the first graded items")

        second = Client(first.src, verbose=False)
        with pytest.raises(AppError) as refused:
            second.predict(*arguments(second, "/evaluate", eval_upload=None, eval_dataset="test.jsonl", adapter="",
                                      eval_batch_size=2, eval_limit=2, eval_run_name="other", eval_resume=False,
                                      **SLOW_SAMPLER), api_name="/evaluate")
        message = str(refused.value)
        assert "already running" in message
        assert "long-eval" in message
        assert not job.finished
        status = second.predict(api_name="/evaluate_status")
        assert status["status"] == "running"
        assert "long-eval" in status["description"]
        assert status["done"] >= 2
        assert status["total"] == 40
        assert status["summary"]["n"] >= 2

        first.predict(api_name="/evaluate_stop")  # the stop button acts on its own session's run
        wait_until(lambda: job.finished, TIMEOUT_S, "the stopped evaluation")
        assert job.snapshot()["status"] == "stopped"
    assert "other" not in evaluate_tab.finished_run_names(runtime)
