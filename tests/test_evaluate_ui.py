"""The Evaluate tab's functions, called directly on a tiny random model runtime."""

import csv
import json
import time
from pathlib import Path

import gradio as gr
import pytest

from llada_cot.evaluation import read_finished_rows
from llada_cot.jobs import DONE, STOPPED
from llada_cot.sampling import SamplerConfig
from llada_cot.ui import evaluate
from llada_cot.ui.render import KEPT, MASK, NEW, TokenRenderer
from llada_cot.ui.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
CORE_FIELDS = ("prompt", "gold_answer", "model_answer", "raw_output", "correct")
SMALL = SamplerConfig(gen_length=16, steps=16, block_length=8)


@pytest.fixture
def runtime(random_loaded, tmp_path):
    return Runtime(loaded=random_loaded, workspace=tmp_path / "workspace")


@pytest.fixture
def seed_data():
    return evaluate.load_test_data(None, "test.jsonl")


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def wait_for(runtime: Runtime, job, timeout_s: float = 60.0) -> evaluate.PollUpdate:
    """Poll the job as the page's timer does until it ends; return the last update."""
    deadline = time.monotonic() + timeout_s
    update = evaluate.poll_job(runtime, job.id, -1)
    while update.active and time.monotonic() < deadline:
        time.sleep(0.05)
        update = evaluate.poll_job(runtime, job.id, update.n_rendered)
    assert not update.active, "the evaluation job did not finish in time"
    return update


def run_to_end(runtime, data, name, config=SMALL, limit=4, batch_size=2, resume=False):
    job = evaluate.start_evaluation(runtime, data, "", config, batch_size, limit, name, resume)
    return job, wait_for(runtime, job)


# --- Test data ---------------------------------------------------------------------


def test_bundled_test_sets_are_listed():
    assert "test.jsonl" in evaluate.bundled_test_files()


def test_bundled_set_shows_format_and_count(seed_data):
    text = evaluate.describe_test_data(seed_data)
    assert "test.jsonl" in text
    assert f"{len(seed_data.test_file.items)} items" in text
    assert 'format: seed ("prompt" and "answer")' in text


@pytest.mark.parametrize("records,expected_format", [
    ([{"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "#### 7"}] * 2, "gsm8k"),
    ([{"problem": "Compute $3 + 4$.", "solution": "$\\boxed{7}$"}] * 3, "math"),
])
def test_upload_format_is_detected(tmp_path, records, expected_format):
    upload = write_lines(tmp_path / "mine.jsonl", records)
    data = evaluate.load_test_data(str(upload), "test.jsonl")  # the upload wins over the bundled set
    text = evaluate.describe_test_data(data)
    assert data.test_file.format == expected_format
    assert f"format: {expected_format} (" in text
    assert f"{len(records)} items" in text


def test_bad_upload_shows_file_report(tmp_path):
    upload = write_lines(tmp_path / "broken.jsonl",
                         [{"prompt": "What is 2 + 2?", "answer": "4"}, {"prompt": "No answer here"}])
    with pytest.raises(gr.Error) as raised:
        evaluate.load_test_data(str(upload), None)
    message = raised.value.message
    assert "Cannot use broken.jsonl" in message
    assert "\nline 2, field 'answer': missing" in message  # one problem per line
    assert "<br>" not in message
    assert str(tmp_path) not in message  # the server's temporary folder stays hidden


def test_toast_text_has_one_problem_per_line():
    report = "Cannot use data.jsonl (2 errors):\n  line 1: bad <b>key</b>\n\n  line 3: next & last\n"
    lines = evaluate.as_toast_text(report).split("\n")
    assert lines == ["Cannot use data.jsonl (2 errors):", "line 1: bad &lt;b&gt;key&lt;/b&gt;", "line 3: next &amp; last"]


def test_binary_upload_is_rejected(tmp_path):
    upload = tmp_path / "picture.jsonl"
    upload.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(gr.Error, match="PNG"):
        evaluate.load_test_data(str(upload), None)


def test_missing_data_is_rejected():
    with pytest.raises(gr.Error, match="upload a JSONL file or pick"):
        evaluate.load_test_data(None, None)
    with pytest.raises(gr.Error, match="does not exist"):
        evaluate.load_test_data(None, "../train.jsonl")


@pytest.mark.parametrize("value,message", [("x", "whole number"), (0, "at least 1"), (2.5, "whole number"),
                                           (1000, "at most 64")])
def test_bad_batch_size_is_rejected(value, message):
    with pytest.raises(gr.Error, match=message):
        evaluate.read_whole_number(value, "Batch size", 1, evaluate.MAX_BATCH_SIZE)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65])
def test_bad_run_name_is_rejected(runtime, name):
    with pytest.raises(gr.Error, match="run name"):
        evaluate.results_path(runtime, name)


# --- Run, poll, stop -----------------------------------------------------------------------


def test_run_writes_results_and_downloads(runtime, seed_data):
    job, update = run_to_end(runtime, seed_data, "first")
    snapshot = job.snapshot()
    assert snapshot["status"] == DONE
    assert update.table.shape == (4, len(evaluate.TABLE_COLUMNS))
    assert list(update.table["prompt"]) == [item.prompt for item in seed_data.test_file.items[:4]]
    assert "Accuracy" in update.summary
    assert "95% CI" in update.summary
    assert update.output == runtime.results_dir / "first.jsonl"

    jsonl_file, csv_file = evaluate.download_files(update.output)
    rows = read_finished_rows(jsonl_file)
    assert len(rows) == 4
    assert all(field in rows[0] for field in CORE_FIELDS)
    with csv_file.open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 4
    assert all(field in table[0] for field in CORE_FIELDS)
    assert (runtime.uploads_dir / "first-test.jsonl").is_file()  # the data the results came from


def test_restored_form_matches_the_run(runtime, seed_data, tmp_path):
    assert evaluate.restored_form(None) == {"dataset": None, "adapter": "", "limit": 0}
    job, _ = run_to_end(runtime, seed_data, "bundled-run", limit=3)
    assert evaluate.restored_form(job) == {"dataset": "test.jsonl", "adapter": "", "limit": 3}

    upload = write_lines(tmp_path / "mine.jsonl", [{"prompt": "What is 2 + 2?", "answer": "4"}])
    job, _ = run_to_end(runtime, evaluate.load_test_data(str(upload), None), "uploaded-run", limit=0)
    assert evaluate.restored_form(job) == {"dataset": None, "adapter": "", "limit": 0}


def test_second_run_is_busy_then_stop_and_resume(runtime, seed_data):
    slow = SamplerConfig(gen_length=64, steps=64, block_length=8)
    job = evaluate.start_evaluation(runtime, seed_data, "", slow, 2, 40, "long", False)
    with pytest.raises(gr.Error, match="already running"):
        evaluate.start_evaluation(runtime, seed_data, "", SMALL, 2, 4, "other", False)
    deadline = time.monotonic() + 30
    while job.snapshot()["done"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert evaluate.stop_evaluation(runtime, job.id)
    update = wait_for(runtime, job)
    assert job.snapshot()["status"] == STOPPED
    assert "Resume" in update.progress
    kept_rows = read_finished_rows(runtime.results_dir / "long.jsonl")
    assert 2 <= len(kept_rows) < 40
    assert not evaluate.stop_evaluation(runtime, job.id)  # nothing left to stop

    with pytest.raises(gr.Error, match="already exists"):
        evaluate.start_evaluation(runtime, seed_data, "", slow, 2, 6, "long", False)
    resumed, update = run_to_end(runtime, seed_data, "long", config=slow, limit=len(kept_rows) + 2, resume=True)
    assert resumed.snapshot()["status"] == DONE
    assert update.table.shape[0] == len(kept_rows) + 2  # the kept rows are listed too


def test_failed_run_shows_error(runtime, seed_data):
    runtime.results_dir.mkdir(parents=True)
    (runtime.results_dir / "other.summary.json").write_text(json.dumps({"sampler": {"gen_length": 99}}))
    (runtime.results_dir / "other.jsonl").write_text("")
    job = evaluate.start_evaluation(runtime, seed_data, "", SMALL, 2, 2, "other", True)
    update = wait_for(runtime, job)
    assert "failed" in update.progress
    assert "sampler" in update.summary


def test_unknown_adapter_is_rejected(runtime, seed_data):
    with pytest.raises(gr.Error, match="adapter 'nope'"):
        evaluate.start_evaluation(runtime, seed_data, "nope", SMALL, 2, 2, "run", False)


def test_poll_of_unknown_job_is_none(runtime):
    assert evaluate.poll_job(runtime, None, -1) is None
    assert evaluate.poll_job(runtime, "no-such-job", -1) is None


def test_poll_skips_unchanged_table(runtime, seed_data):
    job, update = run_to_end(runtime, seed_data, "steady")
    again = evaluate.poll_job(runtime, job.id, update.n_rendered)
    assert again.table is not None  # a finished job always sends its final table
    assert runtime.jobs.latest(evaluate.JOB_KIND) is job  # what a reloaded page reattaches to


# --- Replay, open, compare ------------------------------------------------------------------------------


def test_selected_row_replays_its_trajectory(runtime, seed_data, random_loaded):
    _, update = run_to_end(runtime, seed_data, "replay")
    state, details = evaluate.select_item(update.output, 2)
    row = read_finished_rows(update.output)[1]
    assert row["prompt"] in details
    assert state["gen_length"] == SMALL.gen_length

    renderer = TokenRenderer(random_loaded.tokenizer, random_loaded.ids)
    start = evaluate.replay_frame(renderer, state, -1)
    assert [label for _, label in start] == [MASK] * SMALL.gen_length
    first = evaluate.replay_frame(renderer, state, 0)
    assert sum(label == NEW for _, label in first) == len(state["steps"][0]["positions"])
    last_step = state["steps"][-1]["step"]
    final = evaluate.replay_frame(renderer, state, last_step)
    assert MASK not in [label for _, label in final]
    tokens = [token for event in state["steps"] for token in event["token_ids"]]
    assert len(tokens) == SMALL.gen_length
    assert KEPT in [label for _, label in final] or len(state["steps"]) == 1


def test_select_out_of_range_is_rejected(runtime, seed_data):
    _, update = run_to_end(runtime, seed_data, "range")
    with pytest.raises(gr.Error, match="Item 9 is not in range.jsonl"):
        evaluate.select_item(update.output, 9)
    with pytest.raises(gr.Error, match="No results"):
        evaluate.select_item(None, 1)


def test_finished_runs_are_listed_and_opened(runtime, seed_data):
    run_to_end(runtime, seed_data, "older")
    run_to_end(runtime, seed_data, "newer")
    assert evaluate.finished_run_names(runtime)[:2] == ["newer", "older"]
    output, rows = evaluate.read_run(runtime, "older")
    assert len(rows) == 4
    with pytest.raises(gr.Error, match="no results"):
        evaluate.read_run(runtime, "missing")


def test_compare_shows_both_runs_and_differences(runtime, seed_data):
    run_to_end(runtime, seed_data, "short", config=SMALL)
    run_to_end(runtime, seed_data, "long", config=SamplerConfig(gen_length=24, steps=24, block_length=8))
    text, table = evaluate.compare_two_runs(runtime, "short", "long")
    assert text.startswith("A: **short**")
    assert "B: **long**" in text
    assert text.count("Accuracy") == 2
    assert "4 items in both runs" in text
    assert list(table.columns) == evaluate.COMPARE_COLUMNS
    short_rows = read_finished_rows(runtime.results_dir / "short.jsonl")
    long_rows = read_finished_rows(runtime.results_dir / "long.jsonl")
    expected = sum(a["model_answer"] != b["model_answer"] or a["correct"] != b["correct"]
                   for a, b in zip(short_rows, long_rows))
    assert len(table) == expected


def test_compare_rejects_same_or_missing_run(runtime, seed_data):
    run_to_end(runtime, seed_data, "only")
    with pytest.raises(gr.Error, match="two different runs"):
        evaluate.compare_two_runs(runtime, "only", "only")
    with pytest.raises(gr.Error, match="No run picked"):
        evaluate.compare_two_runs(runtime, "only", None)


def test_tab_builds_inside_blocks(runtime):
    with gr.Blocks() as demo:
        evaluate.build_evaluate_tab(runtime)
    names = {dependency.get("api_name") for dependency in demo.config["dependencies"]}
    assert {"evaluate", "evaluate_stop", "evaluate_compare"} <= names
