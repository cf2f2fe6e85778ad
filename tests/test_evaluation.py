"""Batched solving, results files, resume, summary statistics and the `solve` command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llada_cot import cli
from llada_cot.data import read_test_file
from llada_cot.evaluation import (CSV_FIELDS, compare_runs, evaluate_file, own_steps, read_finished_rows,
                                  read_summary, result_differences, solve, summarize, summary_path,
                                  wilson_interval, write_csv)
from llada_cot.loading import TINY_MODEL_DIR, load_model
from llada_cot.sampling import SamplerConfig

ROOT = Path(__file__).resolve().parents[1]
CORE_FIELDS = ("prompt", "gold_answer", "model_answer", "raw_output", "correct")
SMALL = SamplerConfig(gen_length=16, steps=16, block_length=8)


@pytest.fixture(scope="module")
def seed_file():
    return read_test_file(ROOT / "datasets" / "test.jsonl")


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def stop_after(n_rows: int):
    """Return (on_item, should_stop) that stop a run once `n_rows` rows were written."""
    written = []

    def on_item(row, done, total):
        written.append(done)

    return on_item, lambda: bool(written) and written[-1] >= n_rows


# --- Summary statistics --------------------------------------------------------


# Expected bounds from scipy 1.17: scipy.stats.binomtest(correct, total).proportion_ci(method="wilson").
@pytest.mark.parametrize("correct,total,expected", [
    (81, 263, (0.2553, 0.3662)),
    (15, 148, (0.0624, 0.1605)),
    (0, 10, (0.0, 0.2775)),
    (10, 10, (0.7225, 1.0)),
])
def test_wilson_interval_known_values(correct, total, expected):
    low, high = wilson_interval(correct, total)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_interval_of_nothing_is_zero():
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_summary_leaves_out_excluded_items():
    rows = [
        {"correct": True, "excluded": False, "nfe": 10, "elapsed_s": 1.0, "generated_tokens": 20},
        {"correct": False, "excluded": False, "nfe": 10, "elapsed_s": 1.0, "generated_tokens": 10},
        {"correct": False, "excluded": True, "nfe": 20, "elapsed_s": 2.0, "generated_tokens": 10},
    ]
    summary = summarize(rows)
    assert summary["n"] == 2
    assert summary["n_excluded"] == 1
    assert summary["n_correct"] == 1
    assert summary["accuracy"] == 0.5
    assert summary["ci95"] == [round(value, 4) for value in wilson_interval(1, 2)]
    assert summary["mean_nfe"] == pytest.approx(40 / 3)
    assert summary["generated_tokens_per_s"] == pytest.approx(40 / 4.0)


def test_summary_of_only_excluded_items_has_no_accuracy():
    summary = summarize([{"correct": False, "excluded": True, "nfe": 4, "elapsed_s": 1.0, "generated_tokens": 1}])
    assert summary["accuracy"] is None
    assert summary["n"] == 0
    assert summary["n_excluded"] == 1


def test_unparsable_gold_is_excluded_not_correct(random_loaded, tmp_path):
    data = read_test_file(write_lines(tmp_path / "test.jsonl", [
        {"prompt": "What is 1 + 1?", "answer": "2"},
        {"prompt": "Describe the number two.", "answer": "a small even number greater than one"},
    ]))
    summary = evaluate_file(random_loaded, data, SMALL, tmp_path / "out.jsonl", batch_size=2)
    rows = read_finished_rows(tmp_path / "out.jsonl")
    assert rows[1]["excluded"] is True
    assert rows[1]["correct"] is False
    assert summary["n_excluded"] == 1
    assert summary["n"] == 1


# --- Results files ------------------------------------------------------------------


def test_results_have_core_fields_in_file_order(random_loaded, seed_file, tmp_path):
    output = tmp_path / "out.jsonl"
    summary = evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=3, limit=5)
    rows = read_finished_rows(output)
    assert [row["prompt"] for row in rows] == [item.prompt for item in seed_file.items[:5]]
    for row in rows:
        for field in (*CORE_FIELDS, "nfe", "elapsed_s", "generated_tokens", "trajectory", "line"):
            assert field in row, field
        assert row["nfe"] == SMALL.steps
    assert summary["n_items"] == 5
    assert summary["complete"] is True
    assert summary["format"] == "seed"


def test_summary_file_stores_settings(random_loaded, seed_file, tmp_path):
    output = tmp_path / "run.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=2, metadata={"data": "test.jsonl"})
    stored = read_summary(output)
    assert summary_path(output) == tmp_path / "run.summary.json"
    assert stored["model"] == random_loaded.reference
    assert stored["sampler"]["gen_length"] == SMALL.gen_length
    assert stored["data"] == "test.jsonl"
    assert stored["complete"] is True


@pytest.mark.parametrize("records,expected_format", [
    ([{"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7\n#### 7"}], "gsm8k"),
    ([{"problem": "Compute $3 + 4$.", "solution": "$3 + 4 = \\boxed{7}$"}], "math"),
    ([{"prompt": "What is 3 + 4?", "answer": 7}], "seed"),
])
def test_other_formats_grade_their_gold(random_loaded, tmp_path, records, expected_format):
    data = read_test_file(write_lines(tmp_path / "test.jsonl", records))
    summary = evaluate_file(random_loaded, data, SMALL, tmp_path / "out.jsonl")
    rows = read_finished_rows(tmp_path / "out.jsonl")
    assert summary["format"] == expected_format
    assert rows[0]["gold_answer"] == "7"
    assert rows[0]["excluded"] is False


def test_csv_export_has_core_fields(random_loaded, seed_file, tmp_path):
    evaluate_file(random_loaded, seed_file, SMALL, tmp_path / "out.jsonl", batch_size=2, limit=2)
    path = write_csv(read_finished_rows(tmp_path / "out.jsonl"), tmp_path / "out.csv")
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header) == CSV_FIELDS
    assert set(CORE_FIELDS) <= set(header)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_invalid_batch_size_is_rejected(random_loaded, seed_file, tmp_path, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_file(random_loaded, seed_file, SMALL, tmp_path / "out.jsonl", batch_size=batch_size)


# --- Batches -----------------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    SamplerConfig(gen_length=24, steps=24, block_length=8),
    SamplerConfig(gen_length=24, steps=12, block_length=8, cfg_scale=1.0),
    SamplerConfig(gen_length=24, steps=24, block_length=8, threshold=0.05),
], ids=["schedule", "cfg", "threshold"])
def test_batch_size_does_not_change_rows(random_loaded, seed_file, tmp_path, config):
    rows = {}
    for batch_size in (1, 4, 3):
        output = tmp_path / f"batch-{batch_size}.jsonl"
        evaluate_file(random_loaded, seed_file, config, output, batch_size=batch_size, limit=8)
        rows[batch_size] = read_finished_rows(output)
    assert result_differences(rows[1], rows[4]) == []
    assert result_differences(rows[1], rows[3]) == []


def test_batched_rows_have_no_empty_steps(random_loaded, seed_file):
    config = SamplerConfig(gen_length=24, steps=24, block_length=8, threshold=0.05)
    solutions = solve(random_loaded, [item.prompt for item in seed_file.items[:4]], config)
    for solution in solutions:
        assert all(event["positions"] for event in solution.trajectory)
        assert [event["step"] for event in solution.trajectory] == list(range(len(solution.trajectory)))
        assert solution.nfe == solution.trajectory[-1]["nfe"]


def test_own_steps_counts_only_own_passes():
    batch_steps = [
        {"step": 0, "positions": [0, 1], "nfe": 1, "forward_positions": 40},
        {"step": 1, "positions": [], "nfe": 2, "forward_positions": 50},
        {"step": 2, "positions": [2], "nfe": 3, "forward_positions": 90},
    ]
    steps = own_steps(batch_steps)
    assert [event["step"] for event in steps] == [0, 1]
    assert [event["nfe"] for event in steps] == [1, 2]
    assert [event["forward_positions"] for event in steps] == [40, 80]


def test_result_differences_name_the_field():
    row = {"prompt": "p", "model_answer": "7", "elapsed_s": 1.0,
           "trajectory": [{"step": 0, "positions": [0], "token_ids": [5], "confidences": [0.5], "nfe": 1}]}
    slower = {**row, "elapsed_s": 9.0}
    rounded = {**row, "trajectory": [{**row["trajectory"][0], "confidences": [0.500001]}]}
    other_answer = {**row, "model_answer": "8"}
    other_token = {**row, "trajectory": [{**row["trajectory"][0], "token_ids": [6]}]}
    assert result_differences([row], [slower]) == []
    assert result_differences([row], [rounded]) == []
    assert "model_answer" in result_differences([row], [other_answer])[0]
    assert "token_ids" in result_differences([row], [other_token])[0]
    assert "1 rows versus 2" in result_differences([row], [row, row])[0]


@pytest.mark.skipif(not (TINY_MODEL_DIR / "model.safetensors").is_file(), reason="the bundled weights are not built")
def test_bundled_model_batch_one_equals_batch_four(bundled, seed_file, tmp_path):
    config = SamplerConfig(**bundled.sampler_defaults)
    rows = {}
    for batch_size in (1, 4):
        output = tmp_path / f"batch-{batch_size}.jsonl"
        evaluate_file(bundled, seed_file, config, output, batch_size=batch_size, limit=8)
        rows[batch_size] = read_finished_rows(output)
    assert result_differences(rows[1], rows[4]) == []


# --- Stop and resume ---------------------------------------------------------------------------


def test_stop_between_batches_then_resume_equals_full_run(random_loaded, seed_file, tmp_path):
    full = tmp_path / "full.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, full, batch_size=3, limit=8)

    partial = tmp_path / "partial.jsonl"
    on_item, should_stop = stop_after(3)
    summary = evaluate_file(random_loaded, seed_file, SMALL, partial, batch_size=3, limit=8,
                            on_item=on_item, should_stop=should_stop)
    assert summary["complete"] is False
    assert len(read_finished_rows(partial)) == 3

    resumed = evaluate_file(random_loaded, seed_file, SMALL, partial, batch_size=3, limit=8, resume=True)
    assert resumed["complete"] is True
    assert result_differences(read_finished_rows(full), read_finished_rows(partial)) == []


def test_stop_inside_a_batch_writes_no_partial_rows(random_loaded, seed_file, tmp_path):
    output = tmp_path / "out.jsonl"
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 5  # a few denoising steps into the first batch

    summary = evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=4, limit=8, should_stop=should_stop)
    assert read_finished_rows(output) == []
    assert summary["complete"] is False


def test_resume_drops_torn_last_line(random_loaded, seed_file, tmp_path):
    full = tmp_path / "full.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, full, batch_size=4, limit=8)
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)

    torn = tmp_path / "torn.jsonl"
    torn.write_text("".join(lines[:5]) + lines[5][:40], encoding="utf-8")  # died while writing line 6
    evaluate_file(random_loaded, seed_file, SMALL, torn, batch_size=4, limit=8, resume=True)
    assert result_differences(read_finished_rows(full), read_finished_rows(torn)) == []
    assert torn.read_text(encoding="utf-8").endswith("\n")


def test_resume_rejects_other_test_file(random_loaded, seed_file, tmp_path):
    output = tmp_path / "out.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=2)
    other = read_test_file(write_lines(tmp_path / "other.jsonl", [{"prompt": "What is 9 + 9?", "answer": "18"}] * 3))
    with pytest.raises(ValueError, match="another test file"):
        evaluate_file(random_loaded, other, SMALL, output, batch_size=2, resume=True)
    assert len(read_finished_rows(output)) == 2  # the rejected resume kept the earlier results


def test_resume_rejects_other_sampler_settings(random_loaded, seed_file, tmp_path):
    output = tmp_path / "out.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=2)
    longer = SamplerConfig(gen_length=24, steps=24, block_length=8)
    with pytest.raises(ValueError, match="gen_length=16, steps=16, not gen_length=24, steps=24"):
        evaluate_file(random_loaded, seed_file, longer, output, batch_size=2, limit=4, resume=True)


def test_resume_rejects_smaller_limit(random_loaded, seed_file, tmp_path):
    output = tmp_path / "out.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=4)
    with pytest.raises(ValueError, match="more than the 2 items"):
        evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=2, resume=True)


def test_resume_reports_kept_rows_first(random_loaded, seed_file, tmp_path):
    output = tmp_path / "out.jsonl"
    evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=2)
    seen = []
    evaluate_file(random_loaded, seed_file, SMALL, output, batch_size=2, limit=4, resume=True,
                  on_item=lambda row, done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


# --- Comparing runs ---------------------------------------------------------------------------------


def test_compare_runs_lists_changed_items():
    rows_a = [{"line": 1, "prompt": "p1", "gold_answer": "1", "model_answer": "1", "correct": True},
              {"line": 2, "prompt": "p2", "gold_answer": "2", "model_answer": "3", "correct": False},
              {"line": 3, "prompt": "p3", "gold_answer": "3", "model_answer": "3", "correct": True}]
    rows_b = [{"line": 1, "prompt": "p1", "gold_answer": "1", "model_answer": "1", "correct": True},
              {"line": 2, "prompt": "p2", "gold_answer": "2", "model_answer": "2", "correct": True},
              {"line": 4, "prompt": "p4", "gold_answer": "4", "model_answer": "4", "correct": True}]
    comparison = compare_runs(rows_a, rows_b)
    assert comparison.n_common == 2
    assert comparison.n_only_a == 1
    assert comparison.n_only_b == 1
    assert [item["prompt"] for item in comparison.differing] == ["p2"]
    assert comparison.differing[0]["model_answer_a"] == "3"
    assert comparison.differing[0]["correct_b"] is True


def test_compare_runs_pairs_repeated_prompts_in_order():
    rows_a = [{"prompt": "p", "model_answer": "1", "correct": True},
              {"prompt": "p", "model_answer": "2", "correct": False}]
    rows_b = [{"prompt": "p", "model_answer": "1", "correct": True},
              {"prompt": "p", "model_answer": "5", "correct": False}]
    comparison = compare_runs(rows_a, rows_b)
    assert comparison.n_common == 2
    assert [item["model_answer_b"] for item in comparison.differing] == ["5"]


# --- The solve command ---------------------------------------------------------------------------------


def solve_arguments(model_folder, data, output, *extra):
    return ["solve", "--data", str(data), "--output", str(output), "--model", str(model_folder),
            "--gen-length", "16", "--steps", "16", "--block-length", "8", *extra]


def test_solve_command_writes_rows_and_summary(model_folder, tmp_path, capsys, caplog):
    data = write_lines(tmp_path / "gsm.jsonl", [
        {"question": f"Tom has {n} apples and buys 4 more. How many?", "answer": f"{n} + 4 = {n + 4}\n#### {n + 4}"}
        for n in range(5)])
    output = tmp_path / "out.jsonl"
    with caplog.at_level("INFO", logger="llada_cot"):
        code = cli.main(solve_arguments(model_folder, data, output, "--batch-size", "2", "--limit", "4"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "5 items in gsm8k format" in caplog.text
    summary = json.loads(captured.out.strip().splitlines()[-1])
    for key in ("accuracy", "n", "n_excluded", "ci95", "mean_nfe", "generated_tokens_per_s"):
        assert key in summary, key
    assert summary["n"] == 4
    assert "solving" in captured.err  # the tqdm bar
    rows = read_finished_rows(output)
    assert len(rows) == 4
    for row in rows:
        for field in (*CORE_FIELDS, "nfe", "elapsed_s"):
            assert field in row, field


def test_solve_command_resume_equals_one_run(model_folder, tmp_path, capsys):
    data = ROOT / "datasets" / "test.jsonl"
    assert cli.main(solve_arguments(model_folder, data, tmp_path / "full.jsonl", "--batch-size", "2",
                                    "--limit", "6")) == 0
    assert cli.main(solve_arguments(model_folder, data, tmp_path / "parts.jsonl", "--batch-size", "2",
                                    "--limit", "2")) == 0
    assert cli.main(solve_arguments(model_folder, data, tmp_path / "parts.jsonl", "--batch-size", "2",
                                    "--limit", "6", "--resume")) == 0
    capsys.readouterr()
    assert result_differences(read_finished_rows(tmp_path / "full.jsonl"),
                              read_finished_rows(tmp_path / "parts.jsonl")) == []


def test_solve_command_reports_bad_file(model_folder, tmp_path, caplog):
    data = write_lines(tmp_path / "bad.jsonl", [{"text": "no known keys"}])
    code = cli.main(solve_arguments(model_folder, data, tmp_path / "out.jsonl"))
    assert code == 2
    assert "match no test format" in caplog.text


def test_killed_solve_resumes_to_same_file(model_folder, tmp_path):
    """Kill the command with SIGKILL after its first batch, resume it, and compare with one whole run."""
    data = ROOT / "datasets" / "test.jsonl"
    arguments = solve_arguments(model_folder, data, tmp_path / "killed.jsonl", "--batch-size", "2", "--limit", "24")
    arguments[arguments.index("--gen-length") + 1] = arguments[arguments.index("--steps") + 1] = "48"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "llada_cot", *arguments], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = tmp_path / "killed.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and len(read_finished_rows(killed)) < 2:
        time.sleep(0.01)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    n_kept = len(read_finished_rows(killed))
    if n_kept in (0, 24):
        pytest.skip(f"the run had {n_kept} of 24 rows when it was killed, so nothing was interrupted")

    model = load_model(str(model_folder), device="cpu")  # the same reference, so resume accepts the file
    config = SamplerConfig(gen_length=48, steps=48, block_length=8)
    test_file = read_test_file(data)
    evaluate_file(model, test_file, config, killed, batch_size=2, limit=24, resume=True)
    evaluate_file(model, test_file, config, tmp_path / "whole.jsonl", batch_size=2, limit=24)
    assert result_differences(read_finished_rows(tmp_path / "whole.jsonl"), read_finished_rows(killed)) == []
