"""Finished adapters and evaluation runs survive a server restart, and the page writes only into its workspace."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from gradio.utils import get_upload_folder
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from llada_cot.synthetic import make_splits
from llada_cot.ui import evaluate as evaluate_tab
from llada_cot.ui import finetune as finetune_tab
from llada_cot.ui.runtime import Runtime

from page_api import arguments, input_choices, serve, wait_until

ADAPTER = "restart-demo"
RUN_BEFORE = "before-restart"
RUN_AFTER = "after-restart"
PROMPT = "What is 2 + 7?"
SAMPLER = dict(gen_length=16, steps=16, block_length=8, temperature=0.0, cfg_scale=0.0, remasking="low_confidence",
               seed="", threshold=0.0, cache="none", constraints="")
# Three optimizer steps of a rank-4 LoRA: enough to write a complete adapter, in a few seconds on a CPU.
TRAINING = dict(ft_mode="whole", ft_lora_r=4, ft_lora_alpha=8, ft_lora_dropout=0.0, ft_targets=["q_proj", "v_proj"],
                ft_learning_rate=1e-3, ft_max_steps=3, ft_epochs=1, ft_batch_size=4, ft_gradient_accumulation=1,
                ft_warmup_ratio=0.0, ft_save_steps=3, ft_seed=0, ft_pad_response_to=0,
                ft_gradient_checkpointing=False)
JOB_TIMEOUT_S = 120


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def is_inside(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder)


def run_evaluation(client, runtime: Runtime, name: str) -> None:
    client.predict(*arguments(client, "/evaluate", eval_upload=None, eval_dataset="test.jsonl", adapter="",
                              eval_batch_size=2, eval_limit=2, eval_run_name=name, eval_resume=False, **SAMPLER),
                   api_name="/evaluate")
    wait_until(lambda: runtime.jobs.latest(evaluate_tab.JOB_KIND).finished, JOB_TIMEOUT_S, f"evaluation {name}")
    assert runtime.jobs.latest(evaluate_tab.JOB_KIND).snapshot()["status"] == "done"


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A temporary root that also receives the system temporary files, so that stray writes show up in it."""
    system_temp = tmp_path / "temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    return tmp_path


def test_adapter_and_results_survive_restart(bundled, root):
    workspace = root / "workspace"
    train, _ = make_splits(8, 1, seed=3)
    data = root / "data" / "eight.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps(record) + "\n" for record in train), encoding="utf-8")
    files_before = files_under(root)

    first = Runtime(loaded=bundled, workspace=workspace)
    with serve(first) as client:
        report, _ = client.predict(*arguments(client, "/finetune_validate", ft_upload=handle_file(str(data)),
                                              ft_mode="whole"), api_name="/finetune_validate")
        assert "8 records" in report
        client.predict(*arguments(client, "/finetune_start", ft_adapter_name=ADAPTER, ft_resume=False,
                                  ft_overwrite=False, **TRAINING), api_name="/finetune_start")
        wait_until(lambda: first.jobs.latest(finetune_tab.JOB_KIND).finished, JOB_TIMEOUT_S, "fine-tuning")
        status, _, download = client.predict(api_name="/finetune_status")
        assert "Done" in status, status
        assert f"Adapter **{ADAPTER}** saved at step 3" in status
        # The zip lies in the workspace, which is outside the current and the temporary folder here.
        assert Path(download["value"]).name == f"{ADAPTER}.zip"
        run_evaluation(client, first, RUN_BEFORE)

    # A fresh runtime has no jobs in memory, as after a restart; it finds the results on disk only.
    second = Runtime(loaded=bundled, workspace=workspace)
    assert second.jobs.latest(finetune_tab.JOB_KIND) is None
    with serve(second) as client:
        assert ADAPTER in input_choices(client, "/generate", "adapter")
        frame, text, answer, stats, *_ = client.predict(
            *arguments(client, "/generate", prompt=PROMPT, adapter=ADAPTER, **SAMPLER), api_name="/generate")
        assert text
        assert "NFE" in stats
        assert all(entry["class_or_confidence"] != "mask" for entry in frame)
        with pytest.raises(AppError, match="not-an-adapter"):
            client.predict(*arguments(client, "/generate", prompt=PROMPT, adapter="not-an-adapter", **SAMPLER),
                           api_name="/generate")

        assert RUN_BEFORE in input_choices(client, "/evaluate_compare", "eval_run_a")
        run_evaluation(client, second, RUN_AFTER)
        summary, table = client.predict(RUN_BEFORE, RUN_AFTER, api_name="/evaluate_compare")
        assert f"A: **{RUN_BEFORE}**" in summary
        assert f"B: **{RUN_AFTER}**" in summary
        assert summary.count("Accuracy") == 2
        # Same settings at temperature 0 give the same outputs, so the reopened rows match the new ones.
        assert "2 items in both runs, 0 of them differ" in summary
        assert table["data"] == []

    written = files_under(root) - files_before
    assert (workspace / "adapters" / ADAPTER / "adapter_config.json") in written
    assert (workspace / "results" / f"{RUN_BEFORE}.jsonl") in written
    # Gradio keeps uploads and the files it serves in its own cache folder.
    gradio_cache = Path(get_upload_folder())
    outside = sorted(str(path.relative_to(root)) for path in written
                     if not is_inside(path, workspace) and not is_inside(path, gradio_cache))
    assert outside == [], "files written outside the workspace"
