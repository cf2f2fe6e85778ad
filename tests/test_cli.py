import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=120):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "llada_cot", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_generate_json_has_documented_fields(model_folder):
    result = run_cli("generate", "--prompt", "What is 3 + 4?", "--model", str(model_folder),
                     "--gen-length", "24", "--steps", "12", "--block-length", "8", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    for key in ("text", "answer", "nfe", "elapsed_s", "trajectory", "tokens_per_s", "generated_tokens"):
        assert key in payload, key
    assert payload["nfe"] == len(payload["trajectory"])
    committed = sorted(p for step in payload["trajectory"] for p in step["positions"])
    assert committed == list(range(24))
    assert set(payload["trajectory"][0]) >= {"step", "block", "positions", "token_ids", "confidences", "nfe"}


def test_generate_rejects_bad_settings_with_message(model_folder):
    result = run_cli("generate", "--prompt", "x", "--model", str(model_folder),
                     "--gen-length", "16", "--block-length", "32")
    assert result.returncode == 2
    assert "block_length=32 is longer than gen_length=16" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_reports_missing_model():
    result = run_cli("generate", "--prompt", "x", "--model", "no-such-model")
    assert result.returncode == 2
    assert "neither a local folder nor a Hub id" in result.stderr


def test_bundled_model_writes_boxed_answer():
    result = run_cli("generate", "--prompt", "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?",
                     "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["answer"] is not None
    assert f"\\boxed{{{payload['answer']}}}" in payload["text"]
    assert payload["nfe"] == 48  # the bundled model's default steps


def test_solve_writes_seed_fields_and_summary(tmp_path):
    output = tmp_path / "results.jsonl"
    result = run_cli("solve", "--data", "datasets/test.jsonl", "--output", str(output), "--limit", "8",
                     "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 8
    assert 0.0 <= summary["ci95"][0] <= summary["accuracy"] <= summary["ci95"][1] <= 1.0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 8
    for key in ("prompt", "gold_answer", "model_answer", "raw_output", "correct", "nfe", "elapsed_s"):
        assert key in rows[0], key


def test_solve_interrupt_reports_saved_items(tmp_path, model_folder):
    import signal
    import time

    output = tmp_path / "results.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "llada_cot", "--log-level", "WARNING", "solve", "--data", "datasets/test.jsonl",
               "--output", str(output), "--batch-size", "1", "--model", str(model_folder),
               "--gen-length", "64", "--steps", "64", "--block-length", "64"]
    # A shell starts background jobs with SIGINT ignored, and a child keeps that unless it is reset,
    # so the child gets the default disposition whatever the caller's is.
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if output.is_file() and output.read_text(encoding="utf-8").count("\n") >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "solve ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = output.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]  # every line written is a complete JSON object
    message = stderr.strip().splitlines()[-1]
    assert message.startswith(f"Interrupted: {len(rows)} of 499 items are written to {output}")
    assert "--resume" in message
    assert stdout == ""


def main_in_process(argv: list[str]) -> int:
    """Run the CLI in this process, failing the test (not ending pytest) when a KeyboardInterrupt escapes."""
    from llada_cot import cli

    try:
        return cli.main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped cli.main")


def test_generate_interrupt_exits_quietly(monkeypatch, capsys):
    from llada_cot import cli

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_for_args", interrupt)
    assert main_in_process(["generate", "--prompt", "What is 2 + 2?"]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "Interrupted."
    assert captured.out == ""


def interrupted_train(monkeypatch, tmp_path, fine_tune):
    """Run `train` in-process with `fine_tune` replaced; return the exit status."""
    from llada_cot import finetune

    monkeypatch.setattr(finetune, "fine_tune", fine_tune)
    return main_in_process(["train", "--data", "datasets/demo_train.jsonl", "--output", str(tmp_path / "run"),
                            "--model", "tiny", "--device", "cpu"])


def test_train_abort_names_kept_checkpoint(monkeypatch, tmp_path, capsys):
    (tmp_path / "run" / "checkpoints" / "checkpoint-3").mkdir(parents=True)

    def abort(*args, **kwargs):
        raise KeyboardInterrupt

    assert interrupted_train(monkeypatch, tmp_path, abort) == 130
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "checkpoint-3" in message
    assert "--resume" in message


def test_train_abort_without_checkpoint_suggests_overwrite(monkeypatch, tmp_path, capsys):
    def abort(*args, **kwargs):
        raise KeyboardInterrupt

    assert interrupted_train(monkeypatch, tmp_path, abort) == 130
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "before the first checkpoint" in message
    assert "--overwrite" in message


def test_train_stopped_by_ctrl_c_exits_130(monkeypatch, tmp_path, capsys):
    import signal
    from types import SimpleNamespace

    def stop_after_step(*args, stop_event, **kwargs):
        signal.raise_signal(signal.SIGINT)  # the first Ctrl-C only sets the stop flag
        assert stop_event.is_set()
        return SimpleNamespace(global_step=2, max_steps=10, to_dict=lambda: {"status": "stopped"})

    handler_before = signal.getsignal(signal.SIGINT)
    assert interrupted_train(monkeypatch, tmp_path, stop_after_step) == 130
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "stopped"
    message = captured.err.strip().splitlines()[-1]
    assert "step 2 of 10" in message
    assert "--resume" in message
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_generate_rejects_empty_prompt():
    result = run_cli("generate", "--prompt", "  ")
    assert result.returncode == 2
    assert "--prompt is empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_solve_keeps_existing_results_without_flag(tmp_path):
    output = tmp_path / "results.jsonl"
    output.write_text('{"line": 1}\n')
    result = run_cli("solve", "--data", "datasets/test.jsonl", "--output", str(output), "--limit", "1")
    assert result.returncode == 2
    assert "--resume" in result.stderr
    assert "--overwrite" in result.stderr
    assert output.read_text() == '{"line": 1}\n'


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_gpu_is_reported():
    result = run_cli("generate", "--prompt", "What is 2 + 3?", "--device", "cuda")
    assert result.returncode == 2
    assert "--device cpu" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flags", [["generate", "--prompt", "x", "--cache", "full"],
                                   ["generate", "--prompt", "x", "--remasking", "greedy"],
                                   ["train", "--data", "d.jsonl", "--output", "o", "--mode", "all"]])
def test_unknown_choice_is_rejected_before_loading(flags):
    result = run_cli(*flags, "--model", "no-such-model")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "neither a local folder" not in result.stderr
