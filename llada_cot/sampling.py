"""Semi-autoregressive masked-diffusion sampling for LLaDA.

The answer starts as `gen_length` mask tokens after the prompt. It is split
into blocks decoded left to right; within a block every step runs the model,
predicts a token for each masked position, and commits the most confident
predictions. A committed token is never masked again, so every generated
position is committed exactly once.

For settings the official LLaDA `generate` accepts (gen_length divisible by
block_length, steps divisible by the number of blocks) this module commits the
same tokens in the same order at temperature 0. It also accepts lengths and
step counts that do not divide, and states what it does with them in
`SamplerConfig.notes`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from llada_cot.loading import SpecialIds, encode_chat_prompt
from llada_cot.trajectory import StepEvent, Trajectory

REMASKING_RULES = ("low_confidence", "random")
# Above this many tokens per step, outputs of LLaDA-8B degrade into repeats and loops.
MAX_RECOMMENDED_TOKENS_PER_STEP = 8


@dataclass(frozen=True)
class SamplerConfig:
    """Sampler settings; `validate()` raises ValueError naming the value and the fix."""

    gen_length: int = 128
    steps: int = 128
    block_length: int = 32
    temperature: float = 0.0
    cfg_scale: float = 0.0
    remasking: str = "low_confidence"
    seed: int | None = None

    def validate(self) -> SamplerConfig:
        for name in ("gen_length", "steps", "block_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
        if self.block_length > self.gen_length:
            raise ValueError(f"block_length={self.block_length} is longer than gen_length={self.gen_length}; "
                             f"set block_length to at most {self.gen_length}.")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be 0 (greedy) or positive, got {self.temperature!r}.")
        if not math.isfinite(self.cfg_scale) or self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be 0 (off) or positive, got {self.cfg_scale!r}.")
        if self.remasking not in REMASKING_RULES:
            raise ValueError(f"remasking={self.remasking!r} is unknown; use one of {', '.join(REMASKING_RULES)}.")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be a whole number or empty, got {self.seed!r}.")
        return self

    @property
    def num_blocks(self) -> int:
        return math.ceil(self.gen_length / self.block_length)

    def block_bounds(self) -> list[tuple[int, int]]:
        """Return (start, end) offsets of each block in the generated region; the last may be shorter."""
        return [(start, min(start + self.block_length, self.gen_length))
                for start in range(0, self.gen_length, self.block_length)]

    def steps_per_block(self) -> list[int]:
        """Split `steps` over the blocks: equally, the first blocks taking any remainder, at least one each."""
        base, extra = divmod(self.steps, self.num_blocks)
        return [max(1, base + (1 if block < extra else 0)) for block in range(self.num_blocks)]

    @property
    def notes(self) -> list[str]:
        """Sentences on what the sampler will do differently from what the settings suggest."""
        notes = []
        if self.gen_length % self.block_length:
            last = self.gen_length - (self.num_blocks - 1) * self.block_length
            notes.append(f"gen_length {self.gen_length} is not a multiple of block_length {self.block_length}; "
                         f"the last block has {last} positions.")
        if self.steps < self.num_blocks:
            notes.append(f"steps {self.steps} is fewer than the {self.num_blocks} blocks; each block gets one "
                         f"step, so {self.num_blocks} steps run.")
        elif self.steps % self.num_blocks:
            notes.append(f"steps {self.steps} is not a multiple of the {self.num_blocks} blocks; the first "
                         f"{self.steps % self.num_blocks} blocks get one extra step.")
        tokens_per_step = self.block_length / min(self.steps_per_block())
        if tokens_per_step > MAX_RECOMMENDED_TOKENS_PER_STEP:
            notes.append(f"About {tokens_per_step:.0f} tokens are committed per step; more than "
                         f"{MAX_RECOMMENDED_TOKENS_PER_STEP} often gives repeated words or lines. "
                         "Raise steps for better text.")
        return notes


def transfer_counts(n_masked: torch.Tensor, steps: int) -> torch.Tensor:
    """Return how many tokens each step commits, shape (B, steps).

    The linear schedule commits an equal share per step: floor(M / steps),
    plus one more in the first M mod steps steps, so the counts sum to M.
    """
    base = n_masked // steps  # (B,)
    remainder = n_masked % steps
    counts = base[:, None].repeat(1, steps)
    counts += (torch.arange(steps, device=n_masked.device)[None, :] < remainder[:, None]).long()
    return counts


@dataclass
class GenerationResult:
    """Generated ids (B, gen_length), the trajectory, and the cost of the run."""

    tokens: torch.Tensor
    trajectory: Trajectory
    nfe: int
    elapsed_s: float
    stopped: bool = False
    notes: list[str] = field(default_factory=list)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], ids: SpecialIds,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Chat-format and left-pad prompts; return input_ids and attention_mask, both (B, L)."""
    encoded = [encode_chat_prompt(tokenizer, prompt) for prompt in prompts]
    length = max(len(row) for row in encoded)
    input_ids = torch.full((len(encoded), length), ids.pad, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
    for row, row_ids in enumerate(encoded):
        # Left padding keeps every prompt's last token next to its answer.
        input_ids[row, length - len(row_ids):] = torch.tensor(row_ids)
        attention_mask[row, length - len(row_ids):] = 1
    return input_ids.to(device), attention_mask.to(device)


def _sample_tokens(logits: torch.Tensor, temperature: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Return argmax tokens; above temperature 0, Gumbel-max sampling in float64.

    Dividing exp(logits) by (-log U) ** temperature and taking the argmax draws
    from softmax(logits / temperature); float64 keeps the low-probability tail
    from rounding to zero.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits64 = logits.double()
    uniform = torch.rand(logits64.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel = (-torch.log(uniform)) ** temperature
    return (logits64.exp() / gumbel).argmax(dim=-1)


def _confidence(logits: torch.Tensor, tokens: torch.Tensor, rule: str,
                generator: torch.Generator | None) -> torch.Tensor:
    """Return a score per position; higher scores are committed first."""
    if rule == "random":
        return torch.rand(tokens.shape, device=tokens.device, generator=generator, dtype=torch.float64)
    probs = F.softmax(logits.float(), dim=-1)
    return torch.gather(probs, -1, tokens[..., None]).squeeze(-1).double()


@torch.no_grad()
def _forward_logits(model, x: torch.Tensor, attention_mask: torch.Tensor | None,
                    prompt_positions: torch.Tensor, config: SamplerConfig, mask_id: int) -> torch.Tensor:
    """Run the model; with CFG, also on a copy whose prompt is masked, and mix the two."""
    if config.cfg_scale <= 0:
        return model(input_ids=x, attention_mask=attention_mask).logits
    unconditional = x.masked_fill(prompt_positions, mask_id)
    both = torch.cat([x, unconditional], dim=0)
    mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask], dim=0)
    conditional_logits, unconditional_logits = model(input_ids=both, attention_mask=mask).logits.chunk(2, dim=0)
    return unconditional_logits + (config.cfg_scale + 1) * (conditional_logits - unconditional_logits)


def iter_denoising(model, input_ids: torch.Tensor, ids: SpecialIds, config: SamplerConfig,
                   attention_mask: torch.Tensor | None = None) -> Iterator[tuple[StepEvent, torch.Tensor]]:
    """Yield (event, x) after every denoising step; x is the whole (B, L) sequence.

    Breaking out of the loop stops the run at once; nothing outlives the generator.
    """
    config.validate()
    batch, prompt_length = input_ids.shape
    device = input_ids.device
    generator = None
    if config.seed is not None:
        generator = torch.Generator(device=device).manual_seed(config.seed)

    masks = torch.full((batch, config.gen_length), ids.mask, dtype=torch.long, device=device)
    x = torch.cat([input_ids, masks], dim=1)  # (B, P + G)
    if attention_mask is not None:
        attention_mask = torch.cat([attention_mask, torch.ones_like(masks, dtype=attention_mask.dtype)], dim=1)
    prompt_positions = torch.zeros_like(x, dtype=torch.bool)
    prompt_positions[:, :prompt_length] = True

    nfe = 0
    step = 0
    for block, ((start, end), block_steps) in enumerate(zip(config.block_bounds(), config.steps_per_block())):
        block_start, block_end = prompt_length + start, prompt_length + end
        n_masked = (x[:, block_start:block_end] == ids.mask).sum(dim=1)  # (B,)
        counts = transfer_counts(n_masked, block_steps)  # (B, block_steps)
        for block_step in range(block_steps):
            k = counts[:, block_step]
            if int(k.max()) == 0:
                continue  # nothing to commit in any row: skip the forward pass
            logits = _forward_logits(model, x, attention_mask, prompt_positions, config, ids.mask)
            nfe += 2 if config.cfg_scale > 0 else 1
            # Only the current block can be committed, so only its logits are read.
            block_logits = logits[:, block_start:block_end].clone()  # (B, b, V)
            # The mask token is never a valid prediction: committing it would leave a hole.
            block_logits[..., ids.mask] = -torch.inf

            # 1. Predict every position of the block, then score the still-masked ones.
            predicted = _sample_tokens(block_logits, config.temperature, generator)  # (B, b)
            confidence = _confidence(block_logits, predicted, config.remasking, generator)  # (B, b)
            current = x[:, block_start:block_end]
            confidence = confidence.masked_fill(current != ids.mask, -torch.inf)

            # 2. Commit the k most confident positions of each row.
            top = confidence.topk(int(k.max()), dim=-1).indices  # (B, k_max)
            keep = torch.arange(top.shape[1], device=device)[None, :] < k[:, None]
            commit = torch.zeros_like(current, dtype=torch.bool)
            commit.scatter_(1, top, keep)
            x = x.clone()
            x[:, block_start:block_end] = torch.where(commit, predicted, current)

            yield _step_event(step, block, start, commit, predicted, confidence, nfe), x
            step += 1


def _step_event(step: int, block: int, block_offset: int, commit: torch.Tensor, predicted: torch.Tensor,
                confidence: torch.Tensor, nfe: int) -> StepEvent:
    positions, token_ids, confidences = [], [], []
    for row in range(commit.shape[0]):
        where = commit[row].nonzero().squeeze(-1)
        positions.append((where + block_offset).tolist())
        token_ids.append(predicted[row, where].tolist())
        confidences.append([round(c, 6) for c in confidence[row, where].float().tolist()])
    return StepEvent(step=step, block=block, positions=positions, token_ids=token_ids,
                     confidences=confidences, nfe=nfe)


def generate(model, input_ids: torch.Tensor, ids: SpecialIds, config: SamplerConfig,
             attention_mask: torch.Tensor | None = None,
             on_step: Callable[[StepEvent, torch.Tensor], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> GenerationResult:
    """Denoise `gen_length` positions after each prompt row; see `iter_denoising`.

    `on_step(event, x)` runs after each step; when `should_stop()` turns true
    the run ends before the next step and the result has `stopped=True`, with
    the uncommitted positions still holding the mask id.
    """
    config.validate()
    prompt_length = input_ids.shape[1]
    trajectory = Trajectory(gen_length=config.gen_length, prompt_length=prompt_length, notes=config.notes)
    start = time.perf_counter()
    x = torch.cat([input_ids, torch.full((input_ids.shape[0], config.gen_length), ids.mask,
                                         dtype=torch.long, device=input_ids.device)], dim=1)
    stopped = False
    nfe = 0
    steps = iter_denoising(model, input_ids, ids, config, attention_mask)
    for event, x in steps:
        trajectory.steps.append(event)
        nfe = event.nfe
        if on_step is not None:
            on_step(event, x)
        if should_stop is not None and should_stop():
            stopped = any((x[:, prompt_length:] == ids.mask).any(dim=1).tolist())
            steps.close()
            break
    return GenerationResult(tokens=x[:, prompt_length:].clone(), trajectory=trajectory, nfe=nfe,
                            elapsed_s=time.perf_counter() - start, stopped=stopped, notes=config.notes)


def cut_at_stop(token_ids: list[int], ids: SpecialIds) -> list[int]:
    """Return the tokens before the first end-of-text or end-of-turn token."""
    for index, token in enumerate(token_ids):
        if token in ids.stop_ids:
            return token_ids[:index]
    return list(token_ids)


def with_overrides(config: SamplerConfig, **changes) -> SamplerConfig:
    """Return a validated copy of `config` with `changes` applied."""
    return dataclasses.replace(config, **changes).validate()
