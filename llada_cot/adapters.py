"""LoRA adapters on disk: list them, and load one onto a fresh copy of its base model."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from peft import PeftModel

from llada_cot.loading import LoadedModel, ignore_peft_deprecation_warning, load_model

logger = logging.getLogger(__name__)

ADAPTER_CONFIG_FILE = "adapter_config.json"
# Adapter names become folder names, so they are limited to a safe alphabet.
ADAPTER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_adapter_name(name: str) -> str:
    """Return `name` if it is a safe folder name; raise ValueError naming the rule otherwise."""
    if not ADAPTER_NAME_PATTERN.fullmatch(name or "") or ".." in name:
        raise ValueError(f"Adapter name {name!r} is invalid; use 1 to 64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit.")
    return name


def list_adapters(adapters_dir: Path) -> list[str]:
    """Return the names of complete adapters (folders with an adapter config), newest first.

    Hidden folders are skipped: they are adapters still being saved or replaced.
    """
    if not adapters_dir.is_dir():
        return []
    found = [path for path in adapters_dir.iterdir()
             if not path.name.startswith(".") and (path / ADAPTER_CONFIG_FILE).is_file()]
    return [path.name for path in sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)]


def load_with_adapter(base: LoadedModel, adapter_dir: Path, device: str | None = None) -> LoadedModel:
    """Load a new copy of `base`'s model with the adapter merged into its weights.

    A separate copy keeps the base model unchanged for other sessions; merging
    removes the LoRA overhead from every denoising step.
    """
    # NOTE: the copy doubles model memory; with the 8B model that is about 16 GB more in bf16.
    if not (adapter_dir / ADAPTER_CONFIG_FILE).is_file():
        raise ValueError(f"{adapter_dir} holds no {ADAPTER_CONFIG_FILE}; pick an adapter from the list.")
    fresh = load_model(base.reference, device=device or str(base.device), dtype=base.model.dtype)
    with ignore_peft_deprecation_warning():
        merged = PeftModel.from_pretrained(fresh.model, str(adapter_dir)).merge_and_unload()
    merged.eval()
    logger.info("loaded adapter %s onto %s", adapter_dir.name, base.reference)
    return LoadedModel(model=merged, tokenizer=fresh.tokenizer, ids=fresh.ids,
                       reference=f"{base.reference}+{adapter_dir.name}", sampler_defaults=fresh.sampler_defaults)
