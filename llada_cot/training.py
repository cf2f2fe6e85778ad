"""LLaDA supervised fine-tuning: training items, the forward process and the loss.

LLaDA SFT noises only the response. A training sequence is the chat-formatted
prompt followed by the response and end-of-text padding; the padding counts as
response, which is how the model learns where to stop. Each row draws a masking
ratio p, masks every response position with probability p, and the loss is the
cross-entropy on masked positions weighted by 1/p and divided by the row's
response length.

Step-wise chain-of-thought mode turns a record with k rationales into k + 1
items: item i keeps the prompt and the first i rationale lines clean and noises
the rest, which matches semi-autoregressive sampling, where earlier blocks are
already committed when later ones are denoised.

`FineTuneConfig` holds the settings of a LoRA fine-tuning run and `apply_lora`
wraps a model with adapters on the layers it names; llada_cot.finetune runs
the training job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

from llada_cot.loading import SpecialIds, encode_chat_prompt, ignore_peft_deprecation_warning

MODES = ("stepwise", "whole")

# Linear layers of a LLaDA block, named as in the official checkpoint. In LLaDA
# "ff_out" also names the output layer (the LM head), so that target matches it too.
LLADA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
# LLaMA's names for the same layers, which users often copy into LLaDA configs.
LLAMA_TARGET_NAMES = {"o_proj": "attn_out", "gate_proj": "ff_proj", "down_proj": "ff_out"}
LR_SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass(frozen=True)
class TrainingItem:
    """One training sequence: ``input_ids[:n_clean]`` is never masked."""

    input_ids: list[int]
    n_clean: int


def build_items(record: dict, tokenizer: PreTrainedTokenizerBase, ids: SpecialIds,
                mode: str, pad_response_to: int = 0) -> list[TrainingItem]:
    """Turn a ``{"prompt", "rationales", "answer"}`` record into training items.

    The response is the rationales, one per line, then the answer and an
    end-of-turn token. With `pad_response_to`, the response is padded with
    end-of-text up to that many tokens, so the model sees the whole
    generation window it will be sampled with.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown training mode {mode!r}; use one of {', '.join(MODES)}.")
    prompt_ids = encode_chat_prompt(tokenizer, record["prompt"])
    lines = [*record["rationales"], record["answer"]]
    # Token ids of the response, line by line, so that a clean prefix ends on a line break.
    line_ids = [tokenizer.encode(line + ("\n" if i < len(lines) - 1 else ""), add_special_tokens=False)
                for i, line in enumerate(lines)]
    response = [token for line in line_ids for token in line] + [ids.eot]
    response += [ids.eos] * max(0, pad_response_to - len(response))
    input_ids = prompt_ids + response

    n_prefixes = len(record["rationales"]) + 1 if mode == "stepwise" else 1
    items = []
    n_clean = len(prompt_ids)
    for i in range(n_prefixes):
        items.append(TrainingItem(input_ids=input_ids, n_clean=n_clean))
        n_clean += len(line_ids[i])
    return items


class SFTCollator:
    """Pad items with end-of-text and apply the LLaDA forward (noising) process.

    Returns ``input_ids`` (noised), ``target_ids`` (clean), ``masked`` (which
    positions were masked), ``p_mask`` (each row's masking ratio) and
    ``response_length`` (each row's noisable positions, padding included).
    """

    def __init__(self, ids: SpecialIds, eps: float = 1e-3, generator: torch.Generator | None = None,
                 stratified: bool = False):
        self.ids = ids
        self.eps = eps
        self.generator = generator
        # Stratified t draws the B rows' ratios from the B equal slices of (0, 1), one each, in shuffled order.
        # Each row's t stays U(0, 1), so the expected loss is unchanged, but the batch's 1/p weights vary less.
        self.stratified = stratified

    def __call__(self, items: list[TrainingItem | dict]) -> dict[str, torch.Tensor]:
        items = [item if isinstance(item, TrainingItem) else TrainingItem(**item) for item in items]
        length = max(len(item.input_ids) for item in items)
        target = torch.full((len(items), length), self.ids.eos, dtype=torch.long)
        n_clean = torch.tensor([item.n_clean for item in items])
        for row, item in enumerate(items):
            target[row, :len(item.input_ids)] = torch.tensor(item.input_ids)

        # 1. Positions after the clean prefix form the response, padding included.
        positions = torch.arange(length)[None, :]
        response = positions >= n_clean[:, None]  # (B, L)
        # 2. One masking ratio per row: p = (1 - eps) t + eps with t ~ U(0, 1).
        t = torch.rand(len(items), generator=self.generator)
        if self.stratified:
            t = (torch.randperm(len(items), generator=self.generator) + t) / len(items)
        p_mask = (1 - self.eps) * t + self.eps  # (B,)
        # 3. Mask each response position independently with probability p.
        draws = torch.rand(len(items), length, generator=self.generator)
        masked = response & (draws < p_mask[:, None])
        noised = torch.where(masked, torch.full_like(target, self.ids.mask), target)
        return {
            "input_ids": noised,
            "target_ids": target,
            "masked": masked,
            "p_mask": p_mask,
            "response_length": response.sum(dim=1),
        }


def sft_loss(logits: torch.Tensor, target_ids: torch.Tensor, masked: torch.Tensor,
             p_mask: torch.Tensor, response_length: torch.Tensor) -> torch.Tensor:
    """Return the LLaDA SFT loss, averaged over the batch.

    For row b: sum over masked positions of CE / p_b, divided by the row's
    response length. Dividing by the response length (not by the number of
    masked tokens) keeps the estimator unbiased for the 1/p weighting.
    """
    token_ce = F.cross_entropy(logits.float().transpose(1, 2), target_ids, reduction="none")  # (B, L)
    weighted = torch.where(masked, token_ce / p_mask[:, None], torch.zeros_like(token_ce))
    per_row = weighted.sum(dim=1) / response_length.clamp(min=1)
    return per_row.mean()


class LLaDASFTTrainer(Trainer):
    """A `Trainer` whose loss is the LLaDA SFT loss; the model receives only input_ids."""

    # sft_loss is a batch mean, so Trainer must still divide it by the gradient
    # accumulation steps. Without this, Trainer infers the opposite from the
    # model's **kwargs in forward.
    loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None):
        logits = model(input_ids=inputs["input_ids"]).logits
        loss = sft_loss(logits, inputs["target_ids"], inputs["masked"], inputs["p_mask"],
                        inputs["response_length"])
        return (loss, {"logits": logits}) if return_outputs else loss


def build_dataset(records: Iterable, tokenizer: PreTrainedTokenizerBase, ids: SpecialIds, mode: str,
                  pad_response_to: int = 0, max_length: int | None = None) -> list[dict]:
    """Turn training records into the dicts `SFTCollator` takes, checking each sequence's length.

    `records` are dicts or `llada_cot.data.TrainingRecord` objects. Raises
    ValueError naming the first record longer than `max_length` tokens.
    """
    dataset = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            record = {"prompt": record.prompt, "rationales": list(record.rationales), "answer": record.answer,
                      "line": record.line}
        for item in build_items(record, tokenizer, ids, mode, pad_response_to):
            if max_length is not None and len(item.input_ids) > max_length:
                where = f"line {record['line']}" if "line" in record else f"record {index + 1}"
                raise ValueError(f"The training record on {where} is {len(item.input_ids)} tokens long with its "
                                 f"prompt and padding, over the model's maximum of {max_length}; shorten it, "
                                 "or lower pad_response_to.")
            dataset.append({"input_ids": item.input_ids, "n_clean": item.n_clean})
    return dataset


@dataclass
class FineTuneConfig:
    """Settings of a LoRA fine-tuning run; `validate()` checks them all.

    The defaults suit LLaDA-8B on one GPU (learning rate 1e-4, within the
    1e-5 to 1e-4 reported for LoRA SFT at that scale); llada_cot.finetune.
    default_config picks settings for the loaded model.
    """

    mode: str = "stepwise"  # "stepwise" (one item per rationale prefix) or "whole" (one item per record)
    lora_r: int = 8  # rank of each LoRA update
    lora_alpha: int = 16  # the update is scaled by lora_alpha / lora_r
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LLADA_LORA_TARGETS
    learning_rate: float = 1e-4
    max_steps: int | None = None  # optimizer steps; None trains for `epochs` instead
    epochs: float = 3.0
    batch_size: int = 4  # sequences per device per forward pass
    gradient_accumulation: int = 1  # forward passes per optimizer step
    warmup_ratio: float = 0.03  # share of the optimizer steps with a rising learning rate
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    save_steps: int = 100  # optimizer steps between checkpoints
    save_total_limit: int = 2  # checkpoints kept; older ones are deleted
    logging_steps: int = 5  # optimizer steps per row of train_log.jsonl
    seed: int = 0
    pad_response_to: int = 0  # pad each response with end-of-text to this many tokens; 0 pads to the batch
    gradient_checkpointing: bool = False  # recompute block activations in backward to save memory

    def validate(self) -> FineTuneConfig:
        """Return self, or raise ValueError naming the first invalid field and a valid value."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")

        _check_int(self, "lora_r", minimum=1, hint="8 or 16 is typical")
        _check_int(self, "lora_alpha", minimum=1, hint="twice lora_r is typical")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be at least 0 and below 1, got {self.lora_dropout}.")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise ValueError(f"target_modules must be a non-empty list of layer names such as "
                             f"{list(LLADA_LORA_TARGETS)}, got {self.target_modules!r}.")

        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be above 0 and below 1, got {self.learning_rate}; "
                             "1e-4 suits LLaDA-8B and about 1e-3 the bundled tiny model.")
        if self.max_steps is not None:
            _check_int(self, "max_steps", minimum=1, hint="or leave it unset to train for a number of epochs")
        elif not self.epochs > 0:
            raise ValueError(f"epochs must be above 0 when max_steps is not set, got {self.epochs}.")
        _check_int(self, "batch_size", minimum=1, hint="lower it if memory runs out")
        _check_int(self, "gradient_accumulation", minimum=1, hint="1 updates after every batch")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be at least 0 and below 1, got {self.warmup_ratio}.")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got {self.lr_scheduler!r}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay}.")

        _check_int(self, "save_steps", minimum=1, hint="checkpoints are what Resume continues from")
        _check_int(self, "save_total_limit", minimum=1, hint="the latest checkpoint is needed to resume")
        _check_int(self, "logging_steps", minimum=1, hint="1 logs the loss after every step")
        _check_int(self, "seed", minimum=0, hint="any non-negative integer")
        _check_int(self, "pad_response_to", minimum=0, hint="0 pads to the longest sequence of each batch")
        if not isinstance(self.gradient_checkpointing, bool):
            raise ValueError(f"gradient_checkpointing must be true or false, got {self.gradient_checkpointing!r}.")
        self.target_modules = tuple(self.target_modules)
        return self

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["target_modules"] = list(self.target_modules)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> FineTuneConfig:
        """Build a config from `to_dict()` output, ignoring keys this version does not know."""
        known = {spec.name for spec in dataclasses.fields(cls)}
        kept = {key: value for key, value in values.items() if key in known}
        if "target_modules" in kept:
            kept["target_modules"] = tuple(kept["target_modules"])
        return cls(**kept)


def _check_int(config: FineTuneConfig, name: str, minimum: int, hint: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r} ({hint}).")


def linear_layer_names(model: nn.Module) -> list[str]:
    """Return the distinct last name components of the model's linear layers, in model order."""
    names: dict[str, None] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            names[name.rsplit(".", 1)[-1]] = None
    return list(names)


def count_target_matches(model: nn.Module, targets: Iterable[str]) -> dict[str, int]:
    """Return, per LoRA target, how many linear layers it matches under PEFT's rule.

    PEFT matches a target name against a module's full name or its last
    components (``blocks.0.q_proj`` matches ``q_proj``).
    """
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return {target: sum(1 for name in linear if name == target or name.endswith("." + target))
            for target in targets}


def check_lora_targets(model: nn.Module, targets: Iterable[str]) -> dict[str, int]:
    """Return the match counts of `targets`; raise ValueError if any target matches no layer.

    PEFT 0.21 raises only when no target matches at all, so a LLaMA name such
    as ``o_proj`` mixed with valid ones would otherwise train fewer layers.
    """
    counts = count_target_matches(model, targets)
    unknown = [target for target, count in counts.items() if count == 0]
    if unknown:
        valid = ", ".join(linear_layer_names(model))
        hints = [f"{name} -> {LLAMA_TARGET_NAMES[name]}" for name in unknown if name in LLAMA_TARGET_NAMES]
        names = ", ".join(repr(name) for name in unknown)
        verb = "matches" if len(unknown) == 1 else "match"
        message = f"LoRA target{'s' if len(unknown) > 1 else ''} {names} {verb} no layer of this model. " \
                  f"Valid targets: {valid}."
        if hints:
            message += f" LLaMA names map to LLaDA names as {', '.join(hints)}."
        raise ValueError(message)
    return counts


def lora_parameter_count(model: nn.Module, targets: Iterable[str], rank: int) -> int:
    """Return how many parameters LoRA of `rank` on `targets` adds: rank × (in + out) per matched layer."""
    targets = list(targets)
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets):
            total += rank * (module.in_features + module.out_features)
    return total


@dataclass(frozen=True)
class LoraSummary:
    """Summary of an `apply_lora` call: matched layers per target and parameter counts."""

    matches: dict[str, int]
    trainable_parameters: int
    total_parameters: int

    def describe(self) -> str:
        share = 100 * self.trainable_parameters / max(1, self.total_parameters)
        layers = ", ".join(f"{name} ({count})" for name, count in self.matches.items())
        return (f"{self.trainable_parameters:,} trainable of {self.total_parameters:,} parameters "
                f"({share:.2f}%); LoRA on {layers}")


def apply_lora(model: PreTrainedModel, config: FineTuneConfig) -> tuple[PeftModel, LoraSummary]:
    """Wrap `model` in place with LoRA adapters on `config.target_modules`.

    The LoraConfig has no task_type, so the PEFT model passes on exactly the
    arguments it gets (input_ids) and never adds labels or position_ids.
    """
    matches = check_lora_targets(model, config.target_modules)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none")
    with ignore_peft_deprecation_warning():
        peft_model = get_peft_model(model, lora)
    trainable, total = peft_model.get_nb_trainable_parameters()
    return peft_model, LoraSummary(matches=matches, trainable_parameters=trainable, total_parameters=total)
