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


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tokenizer):
    from conftest import random_model

    folder = tmp_path_factory.mktemp("random-llada")
    random_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
