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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase, Trainer

from llada_cot.loading import SpecialIds, encode_chat_prompt

MODES = ("stepwise", "whole")


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

    def __init__(self, ids: SpecialIds, eps: float = 1e-3, generator: torch.Generator | None = None):
        self.ids = ids
        self.eps = eps
        self.generator = generator

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
    """A `Trainer` whose loss is the LLaDA SFT loss; the model only sees input_ids."""

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None):
        logits = model(input_ids=inputs["input_ids"]).logits
        loss = sft_loss(logits, inputs["target_ids"], inputs["masked"], inputs["p_mask"],
                        inputs["response_length"])
        return (loss, {"logits": logits}) if return_outputs else loss
