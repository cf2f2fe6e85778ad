"""Solving prompts and measuring boxed-answer accuracy over a test file."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llada_cot.answers import extract_answer, grade
from llada_cot.data import TestFile
from llada_cot.loading import LoadedModel
from llada_cot.sampling import GenerationResult, SamplerConfig, cut_at_stop, encode_prompts, generate

logger = logging.getLogger(__name__)


@dataclass
class Solution:
    """One prompt's generated answer and what it cost."""

    prompt: str
    text: str  # generated text cut at the first end-of-text or end-of-turn token
    raw_output: str  # every generated position, special tokens included
    answer: str | None
    nfe: int
    elapsed_s: float
    generated_tokens: int  # tokens before the first stop token
    trajectory: list[dict] = field(default_factory=list)
    stopped: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": round(self.tokens_per_s, 2)}


def stop_strings(loaded: LoadedModel) -> list[str]:
    return loaded.tokenizer.convert_ids_to_tokens(list(loaded.ids.stop_ids))


def solution_from_result(loaded: LoadedModel, prompt: str, result: GenerationResult, row: int,
                         elapsed_s: float | None = None) -> Solution:
    """Decode row `row` of a generation result and extract its boxed answer."""
    tokens = result.tokens[row].tolist()
    content = cut_at_stop(tokens, loaded.ids)
    text = loaded.tokenizer.decode(content, skip_special_tokens=True)
    raw_output = loaded.tokenizer.decode(tokens, skip_special_tokens=False)
    answer = extract_answer(raw_output, stop_strings=stop_strings(loaded))
    return Solution(
        prompt=prompt, text=text, raw_output=raw_output, answer=answer, nfe=result.nfe,
        elapsed_s=result.elapsed_s if elapsed_s is None else elapsed_s, generated_tokens=len(content),
        trajectory=result.trajectory.row(row), stopped=result.stopped, notes=result.notes,
    )


def solve(loaded: LoadedModel, prompts: list[str], config: SamplerConfig,
          should_stop: Callable[[], bool] | None = None) -> list[Solution]:
    """Generate answers for a batch of prompts (left-padded, with an attention mask)."""
    input_ids, attention_mask = encode_prompts(loaded.tokenizer, prompts, loaded.ids, loaded.device)
    result = generate(loaded.model, input_ids, loaded.ids, config, attention_mask=attention_mask,
                      should_stop=should_stop)
    share = result.elapsed_s / len(prompts)  # the batch's wall time, shared equally
    return [solution_from_result(loaded, prompt, result, row, share) for row, prompt in enumerate(prompts)]


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion (95% for z = 1.96)."""
    if total == 0:
        return (0.0, 0.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(rows: list[dict]) -> dict:
    """Return accuracy (excluded items left out), its 95% interval, mean NFE and tokens/s."""
    graded = [row for row in rows if not row.get("excluded")]
    n_correct = sum(1 for row in graded if row["correct"])
    low, high = wilson_interval(n_correct, len(graded))
    seconds = sum(row["elapsed_s"] for row in rows)
    tokens = sum(row["generated_tokens"] for row in rows)
    return {
        "accuracy": n_correct / len(graded) if graded else None,
        "n": len(graded),
        "n_correct": n_correct,
        "n_excluded": len(rows) - len(graded),
        "ci95": [round(low, 4), round(high, 4)],
        "mean_nfe": sum(row["nfe"] for row in rows) / len(rows) if rows else None,
        "generated_tokens_per_s": tokens / seconds if seconds > 0 else None,
        "elapsed_s": seconds,
    }


def read_finished_rows(path: Path) -> list[dict]:
    """Return the complete result lines of an earlier run; a torn last line is dropped."""
    if not path.is_file():
        return []
    rows = []
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # the run died while writing this line
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                break
    return rows


def evaluate_file(loaded: LoadedModel, test_file: TestFile, config: SamplerConfig, output: Path,
                  batch_size: int = 8, limit: int | None = None, resume: bool = False,
                  on_item: Callable[[dict, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> dict:
    """Solve every test item, append one JSON line per item to `output`, return the summary.

    With `resume`, items already in `output` are kept and solving continues
    after them, so an interrupted run loses at most the batch in flight.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    items = test_file.items[:limit] if limit else test_file.items
    rows = read_finished_rows(output) if resume else []
    if rows and [row["prompt"] for row in rows] != [item.prompt for item in items[:len(rows)]]:
        raise ValueError(f"{output} holds results of another test file; pass a new --output or drop --resume.")
    output.parent.mkdir(parents=True, exist_ok=True)
    # Rewrite the kept lines so a torn tail from a crash is gone before appending.
    with output.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    stops = stop_strings(loaded)
    with output.open("a", encoding="utf-8") as handle:
        for start in range(len(rows), len(items), batch_size):
            if should_stop is not None and should_stop():
                break
            batch = items[start:start + batch_size]
            solutions = solve(loaded, [item.prompt for item in batch], config)
            for item, solution in zip(batch, solutions):
                verdict = grade(solution.raw_output, item.answer, stop_strings=stops)
                row = {
                    "line": item.line, "prompt": item.prompt, "gold_answer": verdict.gold_answer,
                    "model_answer": verdict.model_answer, "raw_output": solution.raw_output,
                    "correct": verdict.correct, "excluded": verdict.excluded, "text": solution.text,
                    "nfe": solution.nfe, "elapsed_s": round(solution.elapsed_s, 4),
                    "generated_tokens": solution.generated_tokens, "trajectory": solution.trajectory,
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows.append(row)
                if on_item is not None:
                    on_item(row, len(rows), len(items))
            handle.flush()
            os.fsync(handle.fileno())
    summary = summarize(rows)
    summary["complete"] = len(rows) == len(items)
    summary["format"] = test_file.format
    return summary
