"""Solving prompts and measuring boxed-answer accuracy over a test file."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llada_cot.answers import Grade, extract_answer, grade
from llada_cot.data import TestFile, TestItem
from llada_cot.loading import LoadedModel
from llada_cot.sampling import (GenerationResult, SamplerConfig, constraint_tokens, cut_at_stop, encode_prompts,
                                generate)

logger = logging.getLogger(__name__)


@dataclass
class Solution:
    """One prompt's generated answer and what it cost."""

    prompt: str
    text: str  # generated text cut at the first end-of-text or end-of-turn token
    raw_output: str  # every generated position, special tokens included
    answer: str | None
    nfe: int  # forward passes this prompt needed, counting a CFG pair as two
    elapsed_s: float
    generated_tokens: int  # tokens before the first stop token
    trajectory: list[dict] = field(default_factory=list)
    stopped: bool = False
    notes: list[str] = field(default_factory=list)
    gen_length: int = 0
    # Generated-region offset -> token id of positions fixed before the first step (sampler constraints).
    fixed: dict[int, int] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": round(self.tokens_per_s, 2)}


def stop_strings(loaded: LoadedModel) -> list[str]:
    return loaded.tokenizer.convert_ids_to_tokens(list(loaded.ids.stop_ids))


def own_steps(batch_steps: list[dict]) -> list[dict]:
    """Return one row's steps as if the row had been generated alone.

    In a batch, a row that needs fewer steps than its neighbours (with a
    confidence threshold or early stop) gets steps that commit nothing for it.
    Those steps are dropped, the rest are numbered from 0, and `nfe` and
    `forward_positions` count only the passes of the kept steps.
    """
    steps = []
    previous = {"nfe": 0, "forward_positions": 0}
    totals = {"nfe": 0, "forward_positions": 0}
    for event in batch_steps:
        increments = {key: event.get(key, 0) - previous[key] for key in totals}
        previous = {key: event.get(key, 0) for key in totals}
        if not event["positions"]:
            continue
        for key in totals:
            totals[key] += increments[key]
        steps.append({**event, "step": len(steps), **{key: totals[key] for key in totals if key in event}})
    return steps


def solution_from_result(loaded: LoadedModel, prompt: str, result: GenerationResult, row: int,
                         elapsed_s: float | None = None) -> Solution:
    """Decode row `row` of a generation result and extract its boxed answer."""
    tokens = result.tokens[row].tolist()
    content = cut_at_stop(tokens, loaded.ids)
    text = loaded.tokenizer.decode(content, skip_special_tokens=True)
    raw_output = loaded.tokenizer.decode(tokens, skip_special_tokens=False)
    answer = extract_answer(raw_output, stop_strings=stop_strings(loaded))
    steps = own_steps(result.trajectory.row(row))
    # A stopped run has no step for the positions it left masked, so its row keeps the batch's count.
    nfe = steps[-1]["nfe"] if steps and not result.stopped else result.nfe
    return Solution(
        prompt=prompt, text=text, raw_output=raw_output, answer=answer, nfe=nfe,
        elapsed_s=result.elapsed_s if elapsed_s is None else elapsed_s, generated_tokens=len(content),
        trajectory=steps, stopped=result.stopped, notes=result.notes,
        gen_length=result.trajectory.gen_length, fixed=dict(getattr(result.trajectory, "fixed", {}) or {}),
    )


def solve(loaded: LoadedModel, prompts: list[str], config: SamplerConfig,
          should_stop: Callable[[], bool] | None = None) -> list[Solution]:
    """Generate answers for a batch of prompts (left-padded, with an attention mask).

    At temperature 0 each row's tokens, steps and NFE match a batch of one,
    up to float32 rounding of the confidences; see `result_differences`.
    """
    input_ids, attention_mask = encode_prompts(loaded.tokenizer, prompts, loaded.ids, loaded.device)
    fixed = constraint_tokens(config, loaded.tokenizer) if config.constraints.strip() else None
    result = generate(loaded.model, input_ids, loaded.ids, config, attention_mask=attention_mask,
                      should_stop=should_stop, fixed=fixed)
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


def summary_path(output: Path) -> Path:
    """Return the JSON file beside a results file that stores the run's settings and summary."""
    return output.with_name(output.stem + ".summary.json")


def read_summary(output: Path) -> dict:
    """Return the settings and summary stored beside `output`, or {} when there are none."""
    path = summary_path(output)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("ignoring %s: it is not valid JSON", path)
        return {}


def _write_summary(output: Path, data: dict) -> None:
    summary_path(output).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def run_settings(loaded: LoadedModel, config: SamplerConfig, test_file: TestFile) -> dict:
    """Return what decides a run's outputs, so a resumed run can be checked against it."""
    return {"model": loaded.reference, "sampler": asdict(config), "format": test_file.format}


def result_row(item: TestItem, solution: Solution, verdict: Grade) -> dict:
    """Return one results line.

    Every line has prompt, gold_answer, model_answer, raw_output and correct,
    plus the line number, the cost (nfe, elapsed_s, generated_tokens) and what
    a replay needs (gen_length, fixed, trajectory).
    """
    return {
        "line": item.line, "prompt": item.prompt, "gold_answer": verdict.gold_answer,
        "model_answer": verdict.model_answer, "raw_output": solution.raw_output,
        "correct": verdict.correct, "excluded": verdict.excluded, "text": solution.text,
        "nfe": solution.nfe, "elapsed_s": round(solution.elapsed_s, 4),
        "generated_tokens": solution.generated_tokens, "gen_length": solution.gen_length,
        "fixed": solution.fixed, "trajectory": solution.trajectory,
    }


# How to start afresh, for both the solve command and the Evaluate tab.
_NEW_OUTPUT_HINT = "write to a new results file (--output of the solve command, the run name on the page)"


def _check_resumable(output: Path, rows: list[dict], items: list[TestItem], settings: dict) -> None:
    """Raise ValueError when the finished rows in `output` cannot be continued with these items and settings."""
    if len(rows) > len(items):
        raise ValueError(f"{output} contains {len(rows)} results, more than the {len(items)} items to solve; "
                         f"raise the limit, or {_NEW_OUTPUT_HINT}.")
    if [row.get("prompt") for row in rows] != [item.prompt for item in items[:len(rows)]]:
        raise ValueError(f"{output} contains results of another test file; resume with that file, or "
                         f"{_NEW_OUTPUT_HINT}.")
    earlier = read_summary(output)
    if "model" in earlier and earlier["model"] != settings["model"]:
        raise ValueError(f"{output} was made with model {earlier['model']!r}, not {settings['model']!r}; resume "
                         f"with that model, or {_NEW_OUTPUT_HINT}.")
    earlier_sampler = earlier.get("sampler")
    if isinstance(earlier_sampler, dict) and earlier_sampler != settings["sampler"]:
        changed = sorted(key for key in set(earlier_sampler) | set(settings["sampler"])
                         if earlier_sampler.get(key) != settings["sampler"].get(key))
        made_with = ", ".join(f"{key}={earlier_sampler.get(key)!r}" for key in changed)
        requested = ", ".join(f"{key}={settings['sampler'].get(key)!r}" for key in changed)
        raise ValueError(f"{output} was made with sampler settings {made_with}, not {requested}; resume with "
                         f"the same sampler settings, or {_NEW_OUTPUT_HINT}.")


def evaluate_file(loaded: LoadedModel, test_file: TestFile, config: SamplerConfig, output: Path,
                  batch_size: int = 8, limit: int | None = None, resume: bool = False,
                  on_item: Callable[[dict, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  compute_lock: AbstractContextManager | None = None, metadata: dict | None = None) -> dict:
    """Solve every test item, append one JSON line per item to `output`, return the summary.

    Lines are written in file order and flushed after each batch. With
    `resume`, items already in `output` are kept and solving continues after
    them, so an interrupted run loses at most the batch in flight. A batch cut
    short by `should_stop` is dropped, never written with masks left in it.
    `on_item(row, done, total)` runs for each kept row first, then for each new
    one. `compute_lock` is held around each batch's generation only, so other
    users of the model can run between batches. The run's settings, `metadata`
    (descriptive fields such as the data file's name) and summary also go to
    `summary_path(output)`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 (all items) or more, got {limit}.")
    items = test_file.items[:limit] if limit else test_file.items
    settings = run_settings(loaded, config, test_file)
    rows = read_finished_rows(output) if resume else []
    if resume:
        _check_resumable(output, rows, items, settings)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Rewrite the kept lines so a torn tail from a crash is gone before appending.
    with output.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    settings_and_metadata = {**(metadata or {}), **settings}
    _write_summary(output, {**settings_and_metadata, "n_items": len(items), "complete": False})
    if on_item is not None:
        for done, row in enumerate(rows, start=1):
            on_item(row, done, len(items))

    stops = stop_strings(loaded)
    lock = compute_lock if compute_lock is not None else contextlib.nullcontext()
    with output.open("a", encoding="utf-8") as handle:
        for start in range(len(rows), len(items), batch_size):
            if should_stop is not None and should_stop():
                break
            batch = items[start:start + batch_size]
            with lock:
                solutions = solve(loaded, [item.prompt for item in batch], config, should_stop=should_stop)
            if any(solution.stopped for solution in solutions):
                break
            for item, solution in zip(batch, solutions):
                row = result_row(item, solution, grade(solution.raw_output, item.answer, stop_strings=stops))
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows.append(row)
                if on_item is not None:
                    on_item(row, len(rows), len(items))
            handle.flush()
            os.fsync(handle.fileno())
    summary = summarize(rows)
    summary["n_items"] = len(items)
    summary["complete"] = len(rows) == len(items)
    summary["format"] = test_file.format
    _write_summary(output, {**settings_and_metadata, **summary})
    return summary


# Columns of the CSV export; the trajectory is left out because it does not fit in a cell.
CSV_FIELDS = ("line", "prompt", "gold_answer", "model_answer", "raw_output", "correct", "excluded",
              "text", "nfe", "elapsed_s", "generated_tokens")


def write_csv(rows: list[dict], path: Path) -> Path:
    """Write result rows as CSV with `CSV_FIELDS` as the header; return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class RunComparison:
    """Two runs' items paired by prompt, and the pairs whose correctness or model answer differ."""

    differing: list[dict]
    n_common: int
    n_only_a: int
    n_only_b: int


def _keyed_by_prompt(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """Key rows by (prompt, occurrence), so a prompt that repeats in a file pairs in order."""
    keyed: dict[tuple[str, int], dict] = {}
    seen: dict[str, int] = {}
    for row in rows:
        prompt = row.get("prompt", "")
        occurrence = seen.get(prompt, 0)
        seen[prompt] = occurrence + 1
        keyed[(prompt, occurrence)] = row
    return keyed


def compare_runs(rows_a: list[dict], rows_b: list[dict]) -> RunComparison:
    """Pair the items of two runs by prompt and list those where correctness or the model answer differ.

    The pairs keep run A's order. Line numbers are not used for pairing, so
    two runs over different files that share prompts can be compared.
    """
    keyed_a, keyed_b = _keyed_by_prompt(rows_a), _keyed_by_prompt(rows_b)
    common = [key for key in keyed_a if key in keyed_b]
    differing = []
    for key in common:
        a, b = keyed_a[key], keyed_b[key]
        if a.get("correct") == b.get("correct") and a.get("model_answer") == b.get("model_answer"):
            continue
        differing.append({
            "line": a.get("line"), "prompt": a.get("prompt"), "gold_answer": a.get("gold_answer"),
            "model_answer_a": a.get("model_answer"), "correct_a": a.get("correct"),
            "model_answer_b": b.get("model_answer"), "correct_b": b.get("correct"),
        })
    return RunComparison(differing=differing, n_common=len(common),
                         n_only_a=len(keyed_a) - len(common), n_only_b=len(keyed_b) - len(common))


def _trajectory_differences(steps_a: list[dict], steps_b: list[dict], tolerance: float) -> str | None:
    if len(steps_a) != len(steps_b):
        return f"{len(steps_a)} steps versus {len(steps_b)}"
    for step_a, step_b in zip(steps_a, steps_b):
        for key in sorted((set(step_a) | set(step_b)) - {"confidences", "forward_positions"}):
            if step_a.get(key) != step_b.get(key):
                return f"step {step_a.get('step')}: {key} {step_a.get(key)} versus {step_b.get(key)}"
        confidences_a, confidences_b = step_a.get("confidences", []), step_b.get("confidences", [])
        if len(confidences_a) != len(confidences_b) or any(
                abs(x - y) > tolerance for x, y in zip(confidences_a, confidences_b)):
            return f"step {step_a.get('step')}: confidences {confidences_a} versus {confidences_b}"
    return None


def result_differences(rows_a: list[dict], rows_b: list[dict], confidence_tolerance: float = 1e-4,
                       max_reported: int = 10) -> list[str]:
    """Describe where two runs' results differ; an empty list means the same results.

    Costs that depend on the batch are ignored: `elapsed_s`, and `forward_positions`
    of each step, which counts the padded length. Confidences may differ by
    `confidence_tolerance`, because float32 matrix products over a different batch
    shape round differently in the last digits. Everything else, tokens, positions,
    commit order and NFE included, must match exactly.
    """
    differences = []
    if len(rows_a) != len(rows_b):
        differences.append(f"{len(rows_a)} rows versus {len(rows_b)}")
    for index, (a, b) in enumerate(zip(rows_a, rows_b)):
        for key in sorted((set(a) | set(b)) - {"elapsed_s", "trajectory"}):
            if a.get(key) != b.get(key):
                differences.append(f"row {index + 1}, {key}: {a.get(key)!r} versus {b.get(key)!r}")
        trajectory = _trajectory_differences(a.get("trajectory", []), b.get("trajectory", []),
                                             confidence_tolerance)
        if trajectory is not None:
            differences.append(f"row {index + 1}, trajectory: {trajectory}")
        if len(differences) >= max_reported:
            break
    return differences[:max_reported]
