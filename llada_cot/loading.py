"""Resolve a model reference into a model, its tokenizer and its special token ids.

A reference is one of:

* ``tiny`` (the default without a CUDA GPU): the bundled model in ``assets/``;
* a local folder with ``config.json``, weights and tokenizer files;
* a Hugging Face Hub id such as ``GSAI-ML/LLaDA-8B-Instruct`` (the default with
  a CUDA GPU, loaded in bfloat16).

LLaDA checkpoints load into this project's own `LLaDAModelLM`, so no downloaded
code runs. Other architectures need ``trust_remote_code=True``, which only the
operator can turn on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM

logger = logging.getLogger(__name__)

TINY_MODEL = "tiny"
TINY_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "tiny-llada"
DEFAULT_GPU_MODEL = "GSAI-ML/LLaDA-8B-Instruct"

# Token strings of LLaDA's vocabulary; the ids always come from the tokenizer.
MASK_TOKEN = "<|mdm_mask|>"
END_OF_TURN_TOKEN = "<|eot_id|>"


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the sampler and trainer need, read from the tokenizer and config."""

    mask: int
    eos: int  # end of text; also the SFT padding
    eot: int  # end of turn
    pad: int

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Ids after which generated text is cut."""
        return (self.eos, self.eot)


SAMPLER_DEFAULTS_FILE = "sampler_config.json"


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    ids: SpecialIds
    reference: str
    # Sampler settings the model was trained for, from sampler_config.json beside its weights.
    sampler_defaults: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


class ModelLoadError(RuntimeError):
    """A model reference could not be resolved or loaded; the message says what to do."""


def default_reference() -> str:
    return DEFAULT_GPU_MODEL if torch.cuda.is_available() else TINY_MODEL


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return token_id


def special_ids(tokenizer: PreTrainedTokenizerBase, config) -> SpecialIds:
    """Read mask, end-of-text, end-of-turn and padding ids; raise if one is missing."""
    mask = getattr(config, "mask_token_id", None)
    if mask is None:
        mask = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else _token_id(tokenizer, MASK_TOKEN)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else getattr(config, "eos_token_id", None)
    eot = _token_id(tokenizer, END_OF_TURN_TOKEN)
    missing = [name for name, value in (("mask", mask), ("end-of-text", eos)) if value is None]
    if missing:
        raise ModelLoadError(
            f"The tokenizer and config define no {' or '.join(missing)} token id; a masked-diffusion "
            "model needs both (set mask_token_id and eos_token_id in config.json).")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return SpecialIds(mask=mask, eos=eos, eot=eos if eot is None else eot, pad=pad)


def encode_chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Return the token ids of `prompt` as one user turn, ready for the assistant's reply."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _resolve_path(reference: str) -> str:
    if reference == TINY_MODEL:
        if not (TINY_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(
                f"The bundled tiny model is missing from {TINY_MODEL_DIR}; restore it with "
                "`git checkout assets` or retrain it with scripts/train_tiny_model.py.")
        return str(TINY_MODEL_DIR)
    return reference


def _is_llada_config(path_or_id: str) -> bool:
    local = Path(path_or_id) / "config.json"
    if local.is_file():
        return json.loads(local.read_text()).get("model_type") == LLaDAConfig.model_type
    return True  # Hub ids are checked after the config downloads


def load_model(reference: str | None = None, *, device: str | None = None,
               dtype: torch.dtype | None = None, trust_remote_code: bool = False) -> LoadedModel:
    """Load a model reference (see the module docstring) in eval mode.

    Raises ModelLoadError with the fix when the reference is missing, the Hub
    cannot be reached, or the architecture needs remote code that is not allowed.
    """
    reference = reference or default_reference()
    path = _resolve_path(reference)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"Device {device!r} was requested, but this torch build sees no CUDA GPU; "
                             "use --device cpu, or install a CUDA build of torch on a machine with a GPU.")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    is_local = Path(path).exists()
    if not is_local and ("/" not in reference or reference.startswith((".", "/"))):
        raise ModelLoadError(f"Model {reference!r} is neither a local folder nor a Hub id like "
                             f"{DEFAULT_GPU_MODEL!r}; use {TINY_MODEL!r} for the bundled model.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if _is_llada_config(path):
            config = LLaDAConfig.from_pretrained(path)
            if config.model_type != LLaDAConfig.model_type and not trust_remote_code:
                raise ModelLoadError(_remote_code_message(reference, config.model_type))
            model = LLaDAModelLM.from_pretrained(path, config=config, dtype=dtype)
        elif trust_remote_code:
            model = AutoModel.from_pretrained(path, dtype=dtype, trust_remote_code=True)
        else:
            raise ModelLoadError(_remote_code_message(reference, "not llada"))
    except ModelLoadError:
        raise
    except OSError as error:
        where = "the folder" if is_local else "the Hugging Face Hub"
        raise ModelLoadError(
            f"Could not load {reference!r} from {where}: {error}. Without network access, start "
            f"with --model {TINY_MODEL} (bundled) or a local folder that holds the checkpoint.") from error
    model.to(device).eval()
    ids = special_ids(tokenizer, model.config)
    defaults_file = Path(path) / SAMPLER_DEFAULTS_FILE
    sampler_defaults = json.loads(defaults_file.read_text()) if defaults_file.is_file() else {}
    logger.info("loaded %s on %s (%s, %.1fM parameters)", reference, device, dtype,
                sum(p.numel() for p in model.parameters()) / 1e6)
    return LoadedModel(model=model, tokenizer=tokenizer, ids=ids, reference=reference,
                       sampler_defaults=sampler_defaults)


def _remote_code_message(reference: str, model_type: str) -> str:
    return (f"Model {reference!r} has model_type {model_type!r}, which this project does not implement; "
            "loading it runs code from its repository. Start the app with --trust-remote-code "
            "only if you trust that code.")


@contextlib.contextmanager
def ignore_peft_deprecation_warning() -> Iterator[None]:
    """Ignore the FutureWarning that PEFT triggers while it wraps or loads LoRA layers.

    PEFT reads the model's deprecated `is_gradient_checkpointing` property, so
    the warning is not something a user can act on.
    """
    # NOTE: drop this filter once PEFT reads `is_activation_checkpointing` instead.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield
