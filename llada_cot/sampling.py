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

Two options from Fast-dLLM (arXiv 2505.22618) trade exactness for speed:
`threshold` commits every prediction above a probability in one step, and
`cache` reuses the keys and values of the positions outside the current block
within a block (see `llada_cot.modeling_llada.BlockCache`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from llada_cot.loading import SpecialIds, encode_chat_prompt
from llada_cot.trajectory import StepEvent, Trajectory

REMASKING_RULES = ("low_confidence", "random", "margin", "entropy")
CACHE_MODES = ("none", "prefix", "dual")
# Above this many tokens per step, outputs of LLaDA-8B degrade into repeats and loops.
MAX_RECOMMENDED_TOKENS_PER_STEP = 8
# With `early_stop`, a masked position counts as padding when a stop token has more than this probability.
EARLY_STOP_PROBABILITY = 0.9


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
    threshold: float | None = None
    """Confidence-threshold parallel decoding, 0 < threshold <= 1; None keeps the step schedule.

    Each step commits every still-masked position of the current block whose
    predicted token has a probability above `threshold` (the softmax of the
    logits, without temperature), whatever the `remasking` rule. When no
    position passes, the step commits the one that `remasking` ranks first.
    So every step commits at least one token, a block ends when it has no
    masks, and `steps` is ignored.
    """
    cache: str = "none"
    """Block key/value cache: "none", "prefix" (positions left of the block) or "dual" (also right of it).

    The cache is filled at the first step of each block. Later steps of the
    block reuse it, which is an approximation: see `notes`.
    """
    suppress_eos_logits: bool = False
    """Set the end-of-text logit to -inf, so end-of-text is never predicted; end-of-turn stays allowed."""
    suppress_stop_confidence: bool = False
    """Rank end-of-text and end-of-turn predictions below every other prediction, at any temperature.

    A step still commits its quota, so when only stop predictions remain in
    the block, they are committed. With `threshold`, a stop prediction never
    counts as passing it, so it is committed only when no other prediction
    remains in the block.
    """
    early_stop: bool = False
    """Fill the rest of a row with stop tokens once every masked position from the block on predicts one.

    The check runs after every forward pass that predicts all positions from
    the current block's start to the end of the sequence. Those are all passes
    without a cache or with the prefix cache, and the first pass of each block
    with the dual cache. When every masked position of a row in that range
    gives a stop token (end-of-text or end-of-turn) a probability above
    EARLY_STOP_PROBABILITY, each of them gets its most likely stop token. The
    run ends when no row has masks left.
    """
    constraints: str = ""
    """Words fixed at offsets of the generated region before the first step, such as "0:Once, 5:upon".

    The sampler needs them as token ids: pass `fixed=constraint_tokens(config, tokenizer)`.
    """

    def validate(self) -> SamplerConfig:
        self._validate_schedule()
        self._validate_sampling()
        self._validate_options()
        parse_constraints(self.constraints, self.gen_length)
        return self

    def _validate_schedule(self) -> None:
        for name in ("gen_length", "steps", "block_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
        if self.block_length > self.gen_length:
            raise ValueError(f"block_length={self.block_length} is longer than gen_length={self.gen_length}; "
                             f"set block_length to at most {self.gen_length}.")

    def _validate_sampling(self) -> None:
        if not _is_number(self.temperature) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be 0 (greedy) or positive, got {self.temperature!r}.")
        if not _is_number(self.cfg_scale) or not math.isfinite(self.cfg_scale) or self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be 0 (off) or positive, got {self.cfg_scale!r}.")
        if self.remasking not in REMASKING_RULES:
            raise ValueError(f"remasking={self.remasking!r} is unknown; use one of {', '.join(REMASKING_RULES)}.")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be a whole number or empty, got {self.seed!r}.")

    def _validate_options(self) -> None:
        if self.threshold is not None and not (_is_number(self.threshold) and 0 < self.threshold <= 1):
            raise ValueError(f"threshold must be a probability with 0 < threshold <= 1 (0.9 is typical), "
                             f"or empty to use the step schedule; got {self.threshold!r}.")
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache={self.cache!r} is unknown; use one of {', '.join(CACHE_MODES)}.")
        for name in ("suppress_eos_logits", "suppress_stop_confidence", "early_stop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if not isinstance(self.constraints, str):
            raise ValueError(f"constraints must be text such as '0:Once, 5:upon', got {self.constraints!r}.")

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
        if self.threshold is None:
            notes.extend(self._schedule_notes())
        else:
            notes.append(f"threshold {self.threshold:g} is set, so steps {self.steps} is ignored: each step "
                         f"commits every masked position of the block whose prediction has a probability above "
                         f"{self.threshold:g}, and at least one, so the number of steps depends on the model.")
        notes.extend(self._cache_notes())
        return notes

    def _schedule_notes(self) -> list[str]:
        notes = []
        if self.steps < self.num_blocks:
            notes.append(f"steps {self.steps} is fewer than the {self.num_blocks} blocks; each block gets one "
                         f"step, so {self.num_blocks} steps run.")
        elif self.steps % self.num_blocks:
            extra = self.steps % self.num_blocks
            receivers = "the first block gets" if extra == 1 else f"the first {extra} blocks get"
            notes.append(f"steps {self.steps} is not a multiple of the {self.num_blocks} blocks; {receivers} one "
                         "extra step.")
        tokens_per_step = self.block_length / min(self.steps_per_block())
        if tokens_per_step > MAX_RECOMMENDED_TOKENS_PER_STEP:
            notes.append(f"About {tokens_per_step:.0f} tokens are committed per step; more than "
                         f"{MAX_RECOMMENDED_TOKENS_PER_STEP} often gives repeated words or lines. "
                         "Raise steps for better text.")
        return notes

    def _cache_notes(self) -> list[str]:
        if self.cache == "none":
            return []
        notes = ["The prefix cache is an approximation: within a block, the keys and values of the positions "
                 "left of the block stay as they were at the block's first step, although attention is "
                 "bidirectional and the block's tokens change."]
        if self.cache == "dual":
            notes.append("The dual cache also keeps the keys and values of the masked positions right of the "
                         "block from the block's first step, so later steps run only the block's positions.")
        if self.early_stop and self.cache == "dual":
            notes.append("With the dual cache, early_stop is checked only at the first step of each block, "
                         "the only pass that predicts the positions right of the block.")
        return notes


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_constraints(text: str, gen_length: int) -> list[tuple[int, str]]:
    """Parse "offset:word, offset:word" into (offset, word) pairs; raise ValueError on bad input.

    Offsets count from the first generated position. Blank items, as after a
    trailing comma, are skipped.
    """
    pairs = []
    seen = set()
    for item in text.split(","):
        if not item.strip():
            continue
        offset_text, colon, word = item.partition(":")
        if not colon or not word.strip():
            raise ValueError(f"constraint {item.strip()!r} is not of the form offset:word; "
                             "write for example '0:Once, 5:upon'.")
        try:
            offset = int(offset_text.strip())
        except ValueError:
            raise ValueError(f"constraint {item.strip()!r} has offset {offset_text.strip()!r}, which is not "
                             "a whole number; write for example '5:upon'.") from None
        if not 0 <= offset < gen_length:
            raise ValueError(f"constraint {item.strip()!r} has offset {offset}, outside the generated region; "
                             f"use an offset from 0 to {gen_length - 1}.")
        if offset in seen:
            raise ValueError(f"constraints give offset {offset} twice; keep one word per offset.")
        seen.add(offset)
        pairs.append((offset, word.strip()))
    return pairs


def constraint_tokens(config: SamplerConfig, tokenizer: PreTrainedTokenizerBase) -> dict[int, int]:
    """Tokenise `config.constraints` into {offset in the generated region: token id}.

    A word that becomes several tokens fills consecutive offsets from its own.
    A word at offset 0 is tokenised as written. At a later offset a space goes
    before it, because LLaMA-style vocabularies store a word inside running
    text with its leading space. Raises ValueError when a word runs past
    gen_length or into another word's offsets.
    """
    fixed: dict[int, int] = {}
    for offset, word in parse_constraints(config.constraints, config.gen_length):
        text = word if offset == 0 else " " + word
        token_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if offset + len(token_ids) > config.gen_length:
            raise ValueError(f"constraint {offset}:{word} needs {len(token_ids)} tokens and runs past "
                             f"gen_length={config.gen_length}; move it left or raise gen_length.")
        for index, token_id in enumerate(token_ids):
            if offset + index in fixed:
                raise ValueError(f"constraint {offset}:{word} needs {len(token_ids)} tokens and overlaps the "
                                 f"word at offset {offset + index}; move one of them.")
            fixed[offset + index] = token_id
    return fixed


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
    forward_positions: int = 0  # query positions per sequence run through the model; see StepEvent


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
    from rounding to zero. Subtracting each row's maximum first keeps exp()
    finite and leaves the argmax unchanged.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits64 = logits.double()
    logits64 = logits64 - logits64.amax(dim=-1, keepdim=True)
    uniform = torch.rand(logits64.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel = (-torch.log(uniform)) ** temperature
    return (logits64.exp() / gumbel).argmax(dim=-1)


def _rule_scores(probs: torch.Tensor, predicted: torch.Tensor, rule: str,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Return (B, n) float64 scores of `rule`; higher scores are committed first.

    probs (B, n, V) is softmax(logits) without temperature.
    """
    if rule == "random":
        return torch.rand(predicted.shape, device=predicted.device, generator=generator, dtype=torch.float64)
    if rule == "margin":  # top-1 minus top-2 probability, whichever token was sampled
        top2 = probs.topk(2, dim=-1).values
        return (top2[..., 0] - top2[..., 1]).double()
    if rule == "entropy":  # negative entropy; xlogy gives 0 for tokens of probability 0
        return torch.special.xlogy(probs, probs).sum(dim=-1).double()
    return torch.gather(probs, -1, predicted[..., None]).squeeze(-1).double()  # low_confidence


def _demote(scores: torch.Tensor, demoted: torch.Tensor) -> torch.Tensor:
    """Shift the `demoted` scores below every other finite score of the tensor, keeping their order."""
    finite = torch.isfinite(scores)
    highest = scores.masked_fill(~finite, -torch.inf).amax()
    lowest = scores.masked_fill(~finite, torch.inf).amin()
    gap = torch.nan_to_num(highest - lowest, nan=0.0, posinf=0.0, neginf=0.0) + 1  # 1 when nothing is finite
    return torch.where(demoted, scores - gap, scores)


def _top_k(rank: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Return a (B, n) bool mask of the k[row] highest ranks of each row."""
    top = rank.topk(int(k.max()), dim=-1).indices  # (B, k_max)
    keep = torch.arange(top.shape[1], device=rank.device)[None, :] < k[:, None]
    chosen = torch.zeros_like(rank, dtype=torch.bool)
    return chosen.scatter_(1, top, keep)


@dataclass
class _Step:
    """One denoising step as tensors; columns start at generated-region offset `offset`."""

    step: int
    block: int
    offset: int
    commit: torch.Tensor  # (B, n) bool
    tokens: torch.Tensor  # (B, n) predicted ids
    scores: torch.Tensor  # (B, n) float64 confidence of each prediction
    nfe: int
    forward_positions: int
    x: torch.Tensor  # (B, P + G), the sequence after the step


class _Denoiser:
    """Forward passes and commit decisions of one run; `run()` yields a `_Step` per step."""

    def __init__(self, model, input_ids: torch.Tensor, ids: SpecialIds, config: SamplerConfig,
                 attention_mask: torch.Tensor | None, fixed: dict[int, int] | None):
        self.model, self.ids, self.config = model, ids, config
        self.prompt_length = input_ids.shape[1]
        self.generator = None
        if config.seed is not None:
            self.generator = torch.Generator(device=input_ids.device).manual_seed(config.seed)
        self.x = initial_sequence(input_ids, ids, config, fixed)  # (B, P + G)
        self.attention_mask = attention_mask
        if attention_mask is not None and bool(attention_mask.all()):
            # No row is padded: without a mask the positions and attention are the same, and
            # scaled_dot_product_attention can take its faster unmasked kernels.
            self.attention_mask = None
        if self.attention_mask is not None:
            generated = torch.ones((input_ids.shape[0], config.gen_length), dtype=attention_mask.dtype,
                                   device=attention_mask.device)
            self.attention_mask = torch.cat([attention_mask, generated], dim=1)
        # Only the prompt is masked in the unconditional CFG copy; fixed positions stay.
        self.prompt_positions = torch.zeros_like(self.x, dtype=torch.bool)
        self.prompt_positions[:, :self.prompt_length] = True
        self.stop_ids = torch.tensor(ids.stop_ids, device=input_ids.device)
        self.cache = None
        self.nfe = 0
        self.forward_positions = 0

    def run(self) -> Iterator[_Step]:
        step = 0
        bounds = zip(self.config.block_bounds(), self.config.steps_per_block())
        for block, ((start, end), block_steps) in enumerate(bounds):
            self.cache = None  # the previous block's cache is stale; the next pass refills it
            block_start, block_end = self.prompt_length + start, self.prompt_length + end
            schedule = None
            if self.config.threshold is None:
                n_masked = (self.x[:, block_start:block_end] == self.ids.mask).sum(dim=1)  # (B,)
                schedule = transfer_counts(n_masked, block_steps)  # (B, block_steps)
            for block_step in itertools.count():
                masked = self.x[:, block_start:block_end] == self.ids.mask  # (B, b)
                if not masked.any() or (schedule is not None and block_step >= schedule.shape[1]):
                    break
                quota = None if schedule is None else schedule[:, block_step]
                if quota is not None and int(quota.max()) == 0:
                    continue  # nothing to commit in any row: skip the forward pass
                yield self._step(step, block, block_start, block_end, masked, quota)
                step += 1

    def _step(self, step: int, block: int, block_start: int, block_end: int, masked: torch.Tensor,
              quota: torch.Tensor | None) -> _Step:
        logits = self._logits(block_start, block_end)  # (B, n, V) from the block start, n >= b
        width = block_end - block_start

        # 1. Predict every position of the block, then score the still-masked ones.
        block_logits = self._allowed(logits[:, :width])
        predicted = _sample_tokens(block_logits, self.config.temperature, self.generator)  # (B, b)
        probs = F.softmax(block_logits.float(), dim=-1)  # (B, b, V)
        scores = _rule_scores(probs, predicted, self.config.remasking, self.generator)  # (B, b)
        rank = scores.masked_fill(~masked, -torch.inf)
        is_stop = torch.isin(predicted, self.stop_ids)
        if self.config.suppress_stop_confidence:
            rank = _demote(rank, is_stop)

        # 2. Choose the positions to commit: the schedule's quota or everything above the threshold.
        if quota is not None:
            commit = _top_k(rank, quota) & masked
        else:
            commit = self._above_threshold(probs, predicted, rank, masked, is_stop)

        # 3. Rows whose remaining masks are all confidently padding are filled to the end.
        commit, predicted, scores = self._early_stop(logits, block_start, commit, predicted, scores)

        # 4. Commit: a committed token is never masked again.
        columns = commit.shape[1]
        self.x = self.x.clone()  # callers may keep the previous frame
        current = self.x[:, block_start:block_start + columns]
        self.x[:, block_start:block_start + columns] = torch.where(commit, predicted, current)
        return _Step(step=step, block=block, offset=block_start - self.prompt_length, commit=commit,
                     tokens=predicted, scores=scores, nfe=self.nfe, forward_positions=self.forward_positions,
                     x=self.x)

    def _above_threshold(self, probs: torch.Tensor, predicted: torch.Tensor, rank: torch.Tensor,
                         masked: torch.Tensor, is_stop: torch.Tensor) -> torch.Tensor:
        """Return the (B, b) masked positions whose predicted token's probability passes the threshold."""
        chosen_probability = torch.gather(probs, -1, predicted[..., None]).squeeze(-1)  # (B, b)
        above = masked & (chosen_probability > self.config.threshold)
        if self.config.suppress_stop_confidence:
            above &= ~is_stop
        # A row where nothing passes still commits the position its rule ranks first.
        first = torch.zeros_like(masked).scatter_(1, rank.argmax(dim=1, keepdim=True), True)
        stalled = masked.any(dim=1, keepdim=True) & ~above.any(dim=1, keepdim=True)
        return above | (first & stalled)

    def _allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """Return a copy of `logits` where forbidden tokens have logit -inf."""
        logits = logits.clone()
        # The mask token is never a valid prediction: committing it would leave a hole.
        logits[..., self.ids.mask] = -torch.inf
        if self.config.suppress_eos_logits:
            logits[..., self.ids.eos] = -torch.inf
        return logits

    def _early_stop(self, logits: torch.Tensor, block_start: int, commit: torch.Tensor, predicted: torch.Tensor,
                    scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Widen the step's tensors to the end of the sequence for rows that stop early."""
        rest = self.x.shape[1] - block_start
        if not self.config.early_stop or logits.shape[1] < rest:
            return commit, predicted, scores  # this pass did not predict the positions right of the block
        masked = self.x[:, block_start:] == self.ids.mask  # (B, rest)
        stop_probs = F.softmax(self._allowed(logits).float(), dim=-1)[..., self.stop_ids]  # (B, rest, 2)
        best_probability, best_index = stop_probs.max(dim=-1)
        padding = best_probability > EARLY_STOP_PROBABILITY
        stops = (padding | ~masked).all(dim=1) & masked.any(dim=1)  # (B,)
        if not stops.any():
            return commit, predicted, scores

        width = commit.shape[1]
        wide_commit = torch.zeros_like(masked)
        wide_commit[:, :width] = commit
        wide_commit[stops] = masked[stops]
        wide_tokens = self.stop_ids[best_index]  # (B, rest)
        wide_tokens[:, :width] = torch.where(stops[:, None], wide_tokens[:, :width], predicted)
        wide_scores = best_probability.double()
        wide_scores[:, :width] = torch.where(stops[:, None], wide_scores[:, :width], scores)
        return wide_commit, wide_tokens, wide_scores

    def _logits(self, block_start: int, block_end: int) -> torch.Tensor:
        """Run the model (twice as a batch with CFG); return guided logits from `block_start` on.

        The result covers every position to the end of the sequence, except for
        dual-cache passes after a block's first, which cover the block only.
        """
        x, attention_mask = self.x, self.attention_mask
        passes = 1
        if self.config.cfg_scale > 0:
            unconditional = x.masked_fill(self.prompt_positions, self.ids.mask)
            x = torch.cat([x, unconditional], dim=0)  # (2B, L), so a cache filled now contains both halves
            attention_mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
            passes = 2
        with torch.no_grad():
            logits, positions = self._run_model(x, attention_mask, block_start, block_end)
        self.nfe += passes
        self.forward_positions += passes * positions
        if self.config.cfg_scale <= 0:
            return logits
        conditional, unconditional = logits.chunk(2, dim=0)
        return unconditional + (self.config.cfg_scale + 1) * (conditional - unconditional)

    def _run_model(self, x: torch.Tensor, attention_mask: torch.Tensor | None, block_start: int,
                   block_end: int) -> tuple[torch.Tensor, int]:
        """Return logits from `block_start` on and the number of query positions the pass ran."""
        length = x.shape[1]
        if self.config.cache == "none":
            return self.model(input_ids=x, attention_mask=attention_mask).logits[:, block_start:], length
        span_end = length if self.config.cache == "prefix" else block_end
        if self.cache is None:
            output = self.model(input_ids=x, attention_mask=attention_mask, cache_span=(block_start, span_end))
            self.cache = getattr(output, "block_cache", None)
            if self.cache is None:
                raise ValueError(f"cache={self.config.cache!r} needs a model whose forward fills a BlockCache, "
                                 "such as LLaDAModelLM; set cache='none' for this model.")
            return output.logits[:, block_start:], length
        output = self.model(input_ids=x[:, block_start:span_end], block_cache=self.cache)
        return output.logits, span_end - block_start


def initial_sequence(input_ids: torch.Tensor, ids: SpecialIds, config: SamplerConfig,
                     fixed: dict[int, int] | None) -> torch.Tensor:
    """Return the prompt followed by `gen_length` masks, with the `fixed` tokens in place: (B, P + G)."""
    _check_fixed(config, ids, fixed)
    generated = torch.full((input_ids.shape[0], config.gen_length), ids.mask, dtype=torch.long,
                           device=input_ids.device)
    for offset, token_id in (fixed or {}).items():
        generated[:, offset] = token_id
    return torch.cat([input_ids, generated], dim=1)


def _check_fixed(config: SamplerConfig, ids: SpecialIds, fixed: dict[int, int] | None) -> None:
    if config.constraints.strip() and fixed is None:
        raise ValueError(f"constraints={config.constraints!r} is set but no fixed tokens were passed; "
                         "pass fixed=constraint_tokens(config, tokenizer).")
    for offset, token_id in (fixed or {}).items():
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < config.gen_length:
            raise ValueError(f"fixed offset {offset!r} is outside the generated region; "
                             f"use offsets from 0 to {config.gen_length - 1}.")
        if token_id == ids.mask:
            raise ValueError(f"fixed offset {offset} is the mask id {ids.mask}, which is invalid there; "
                             "fix a real token at that offset.")


def iter_denoising(model, input_ids: torch.Tensor, ids: SpecialIds, config: SamplerConfig,
                   attention_mask: torch.Tensor | None = None, *,
                   fixed: dict[int, int] | None = None) -> Iterator[tuple[StepEvent, torch.Tensor]]:
    """Yield (event, x) after every denoising step; x is the whole (B, L) sequence.

    `fixed` maps generated-region offsets to token ids that are in place
    before the first step and never masked; the schedule counts only the
    other positions. Breaking out of the loop stops the run at once; nothing
    outlives the generator.
    """
    config.validate()
    for step in _Denoiser(model, input_ids, ids, config, attention_mask, fixed).run():
        yield _step_event(step), step.x


def _step_event(step: _Step) -> StepEvent:
    batch = step.commit.shape[0]
    rows, columns = step.commit.nonzero(as_tuple=True)
    # One stacked transfer to the host instead of one per row and field.
    table = torch.stack([rows.double(), columns.double(), step.tokens[rows, columns].double(),
                         step.scores[rows, columns].double()], dim=1).tolist()
    positions: list[list[int]] = [[] for _ in range(batch)]
    token_ids: list[list[int]] = [[] for _ in range(batch)]
    confidences: list[list[float]] = [[] for _ in range(batch)]
    for row, column, token, score in table:
        positions[int(row)].append(int(column) + step.offset)
        token_ids[int(row)].append(int(token))
        confidences[int(row)].append(round(score, 6))
    return StepEvent(step=step.step, block=step.block, positions=positions, token_ids=token_ids,
                     confidences=confidences, nfe=step.nfe, forward_positions=step.forward_positions)


def generate(model, input_ids: torch.Tensor, ids: SpecialIds, config: SamplerConfig,
             attention_mask: torch.Tensor | None = None,
             on_step: Callable[[StepEvent, torch.Tensor], None] | None = None,
             should_stop: Callable[[], bool] | None = None, *,
             fixed: dict[int, int] | None = None, record_trajectory: bool = True) -> GenerationResult:
    """Denoise `gen_length` positions after each prompt row; see `iter_denoising`.

    `on_step(event, x)` runs after each step; when `should_stop()` turns true
    the run ends before the next step and the result has `stopped=True`, with
    the uncommitted positions still holding the mask id. With
    `record_trajectory=False` the trajectory keeps no steps, and steps become
    StepEvents only when `on_step` is given.
    """
    config.validate()
    prompt_length = input_ids.shape[1]
    trajectory = Trajectory(gen_length=config.gen_length, prompt_length=prompt_length, notes=config.notes,
                            fixed=dict(fixed or {}))
    start = time.perf_counter()
    denoiser = _Denoiser(model, input_ids, ids, config, attention_mask, fixed)
    x = denoiser.x
    stopped = False
    steps = denoiser.run()
    for step in steps:
        x = step.x
        if record_trajectory or on_step is not None:
            event = _step_event(step)
            if record_trajectory:
                trajectory.steps.append(event)
            if on_step is not None:
                on_step(event, x)
        if should_stop is not None and should_stop():
            stopped = any((x[:, prompt_length:] == ids.mask).any(dim=1).tolist())
            steps.close()
            break
    return GenerationResult(tokens=x[:, prompt_length:].clone(), trajectory=trajectory, nfe=denoiser.nfe,
                            elapsed_s=time.perf_counter() - start, stopped=stopped, notes=config.notes,
                            forward_positions=denoiser.forward_positions)


def cut_at_stop(token_ids: list[int], ids: SpecialIds) -> list[int]:
    """Return the tokens before the first end-of-text or end-of-turn token."""
    for index, token in enumerate(token_ids):
        if token in ids.stop_ids:
            return token_ids[:index]
    return list(token_ids)


def with_overrides(config: SamplerConfig, **changes) -> SamplerConfig:
    """Return a validated copy of `config` with `changes` applied."""
    return dataclasses.replace(config, **changes).validate()
