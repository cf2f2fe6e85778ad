"""Shared fixtures: the bundled tokenizer, tiny random LLaDA models and the bundled model."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from transformers import AutoTokenizer

from llada_cot.loading import TINY_MODEL_DIR, LoadedModel, load_model, special_ids
from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM


def random_model(tokenizer, *, d_model: int = 32, n_layers: int = 2, n_heads: int = 4,
                 n_kv_heads: int | None = None, seed: int = 0) -> LLaDAModelLM:
    """Return a randomly initialised LLaDA of the bundled tokenizer's vocabulary, in eval mode."""
    torch.manual_seed(seed)
    config = LLaDAConfig(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
        mlp_hidden_size=2 * d_model, vocab_size=len(tokenizer), embedding_size=len(tokenizer),
        max_sequence_length=512, rope_theta=10000.0, mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, init_std=0.5,
    )
    return LLaDAModelLM(config).eval()


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_MODEL_DIR)


@pytest.fixture(scope="session")
def random_loaded(tokenizer) -> LoadedModel:
    model = random_model(tokenizer)
    return LoadedModel(model=model, tokenizer=tokenizer, ids=special_ids(tokenizer, model.config),
                       reference="random-test-model")


@pytest.fixture(scope="session")
def bundled() -> LoadedModel:
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory, tokenizer):
    """Return a folder with a random tiny LLaDA and the bundled tokenizer, loadable by reference."""
    folder = tmp_path_factory.mktemp("random-llada")
    random_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
