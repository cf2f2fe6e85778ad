"""The record of one denoising run: which positions each step committed, and summaries of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class StepEvent:
    """What one denoising step committed, per batch row.

    Positions are offsets into the generated region (0 .. gen_length - 1).
    `nfe` counts forward passes so far, counting a CFG pair as two.
    `forward_positions` counts the query positions one sequence has run
    through the model so far, summed over those passes. A block cache lowers
    it while `nfe` stays the same.
    """

    step: int
    block: int
    positions: list[list[int]]
    token_ids: list[list[int]]
    confidences: list[list[float]]
    nfe: int
    forward_positions: int = 0


@dataclass
class Trajectory:
    """Every step of a run, enough to replay it frame by frame."""

    gen_length: int
    prompt_length: int  # padded prompt length shared by the batch
    steps: list[StepEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Generated-region offset -> token id of positions fixed before the first step; no step commits them.
    fixed: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Trajectory:
        steps = [StepEvent(**step) for step in data.get("steps", [])]
        # JSON turns the integer keys of `fixed` into strings.
        fixed = {int(offset): token for offset, token in data.get("fixed", {}).items()}
        return cls(gen_length=data["gen_length"], prompt_length=data["prompt_length"],
                   steps=steps, notes=list(data.get("notes", [])), fixed=fixed)

    def initial_tokens(self, mask_id: int) -> list[int]:
        """Return the generated region before the first step: masks, except the fixed positions."""
        tokens = [mask_id] * self.gen_length
        for offset, token in self.fixed.items():
            tokens[offset] = token
        return tokens

    def row(self, index: int) -> list[dict]:
        """Return one batch row's steps as plain dicts (the CLI and result files store these)."""
        return [
            {"step": s.step, "block": s.block, "positions": s.positions[index],
             "token_ids": s.token_ids[index], "confidences": s.confidences[index], "nfe": s.nfe,
             "forward_positions": s.forward_positions}
            for s in self.steps
        ]


def commit_steps(row_steps: list[dict], gen_length: int) -> list[int | None]:
    """Return, for each generated position, the step that committed it (None if never)."""
    committed: list[int | None] = [None] * gen_length
    for event in row_steps:
        for position in event["positions"]:
            committed[position] = event["step"]
    return committed


def replay_tokens(row_steps: list[dict], gen_length: int, upto_step: int,
                  mask_id: int, initial: list[int] | None = None) -> list[int]:
    """Rebuild a row's generated tokens after step `upto_step` (-1 gives the start)."""
    tokens = list(initial) if initial is not None else [mask_id] * gen_length
    for event in row_steps:
        if event["step"] > upto_step:
            break
        for position, token in zip(event["positions"], event["token_ids"]):
            tokens[position] = token
    return tokens
