"""The script that builds the bundled model: a two-step run writes a model the project can load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llada_cot.loading import TINY_MODEL_DIR, load_model

ROOT = Path(__file__).resolve().parents[1]


def test_two_step_run_saves_loadable_model(tmp_path):
    output = tmp_path / "model"
    command = [sys.executable, "-m", "scripts.train_tiny_model", "--output", str(output),
               "--checkpoint-dir", str(tmp_path / "checkpoints"), "--max-steps", "2", "--warmup-steps", "1",
               "--batch-size", "4", "--d-model", "32", "--n-layers", "1", "--mlp-hidden-size", "64",
               "--direct-fraction", "0.5", "--max-direct-first", "100"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    loaded = load_model(str(output), device="cpu")
    assert loaded.model.config.d_model == 32
    # The script rebuilds the tokenizer, which must match the bundled one token for token.
    assert (output / "tokenizer.json").read_text() == (TINY_MODEL_DIR / "tokenizer.json").read_text()
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["steps"] == 2
    assert summary["command_args"]["direct_fraction"] == "0.5"
    assert summary["command_args"]["max_direct_first"] == "100"
    assert summary["command_args"]["stratified_t"] == "True"
    sampler = json.loads((output / "sampler_config.json").read_text())
    assert sampler["gen_length"] == sampler["steps"] == 48
