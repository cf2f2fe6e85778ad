"""No secret from the environment reaches the logs or the output."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hf_testsecretNOTREAL1234567890"


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_TOKEN": SECRET,
           "HUGGING_FACE_HUB_TOKEN": SECRET}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_debug_log_has_no_token():
    result = run("-m", "llada_cot", "--log-level", "debug", "generate", "--prompt", "What is 2 + 3?",
                 "--gen-length", "16", "--steps", "16", "--block-length", "16")
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr or "INFO" in result.stderr, "the run logged nothing, so the check is empty"
    assert SECRET not in result.stdout + result.stderr


def test_failed_hub_load_has_no_token():
    result = run("app.py", "--model", "GSAI-ML/LLaDA-8B-Instruct", "--port", "0")
    assert result.returncode != 0
    assert "--model tiny" in result.stderr
    assert SECRET not in result.stdout + result.stderr
