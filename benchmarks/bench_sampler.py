"""Measure the sampler's speed-ups and their cost in accuracy on the bundled tiny model.

For each generation length, six sampler settings run on the same prompts:
vanilla (steps = gen_length), threshold 0.9, prefix cache, dual cache,
threshold 0.9 with the dual cache, and that with early stop. For each it
reports forward passes (NFE), wall time per generation (median of repeats,
generation only), generated tokens per second (tokens before the first
end-of-text or end-of-turn), and boxed-answer accuracy on the test file. A second table compares vanilla with
and without the recorded trajectory and with a plain loop written from the
description of the official LLaDA `generate`.

    python benchmarks/bench_sampler.py                  # writes the "## Sampler" section of docs/benchmarks.md
    python benchmarks/bench_sampler.py --limit 50 --no-docs
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never download

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llada_cot.answers import grade  # noqa: E402
from llada_cot.data import read_test_file  # noqa: E402
from llada_cot.evaluation import solve, stop_strings  # noqa: E402
from llada_cot.loading import LoadedModel, load_model, special_ids  # noqa: E402
from llada_cot.sampling import SamplerConfig, cut_at_stop, encode_prompts, generate  # noqa: E402
# Private on purpose: timing StepEvent building alone needs the step tensors before they become events.
from llada_cot.sampling import _Denoiser, _step_event  # noqa: E402

DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Sampler"
TINY_SUBSECTION = "### Bundled tiny model"
BLOCK_LENGTH = 32
THRESHOLD = 0.9
NO_TRAJECTORY = "vanilla, no trajectory"
EVENT_BUILDING = "StepEvent building"
PLAIN_LOOP = "plain official loop"


@dataclass
class Measurement:
    """One setting at one generation length."""

    length: int
    name: str
    nfe: float  # mean forward passes per generation
    full_passes: float  # mean query positions run / sequence length: the compute in full-pass units
    seconds: float  # median over repeats of the mean wall time per generation
    tokens_per_s: float
    accuracy: float | None = None
    n: int = 0


def settings(gen_length: int) -> dict[str, SamplerConfig]:
    """Return the compared sampler settings for one generation length, by display name."""
    vanilla = SamplerConfig(gen_length=gen_length, steps=gen_length, block_length=BLOCK_LENGTH)
    return {
        "vanilla": vanilla,
        f"threshold {THRESHOLD}": dataclasses.replace(vanilla, threshold=THRESHOLD),
        "prefix cache": dataclasses.replace(vanilla, cache="prefix"),
        "dual cache": dataclasses.replace(vanilla, cache="dual"),
        f"threshold {THRESHOLD} + dual cache": dataclasses.replace(vanilla, threshold=THRESHOLD, cache="dual"),
        f"threshold {THRESHOLD} + dual cache + early stop": dataclasses.replace(
            vanilla, threshold=THRESHOLD, cache="dual", early_stop=True),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_official_loop(model, prompt: torch.Tensor, gen_length: int, steps: int, block_length: int,
                        mask_id: int) -> tuple[torch.Tensor, int]:
    """Run the official `generate` loop at temperature 0 with low_confidence, written from its description.

    Takes one prompt row, no attention mask and no CFG. Returns the generated ids (1, G) and the NFE.
    """
    prompt_length = prompt.shape[1]
    x = torch.full((1, prompt_length + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :prompt_length] = prompt
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    nfe = 0
    for block in range(num_blocks):
        block_end = prompt_length + (block + 1) * block_length
        start = block_end - block_length
        masked_count = int((x[:, start:block_end] == mask_id).sum())
        counts = [masked_count // steps_per_block + (1 if j < masked_count % steps_per_block else 0)
                  for j in range(steps_per_block)]
        for count in counts:
            mask_index = x == mask_id
            with torch.no_grad():
                logits = model(x).logits
            nfe += 1
            predicted = logits.argmax(dim=-1)
            probabilities = torch.softmax(logits.double(), dim=-1)
            confidence = torch.gather(probabilities, -1, predicted[..., None]).squeeze(-1)
            confidence[:, block_end:] = -torch.inf
            predicted = torch.where(mask_index, predicted, x)
            confidence = torch.where(mask_index, confidence, torch.tensor(-torch.inf, device=x.device))
            if count:
                chosen = confidence[0].topk(count).indices
                x[0, chosen] = predicted[0, chosen]
    return x[:, prompt_length:], nfe


@dataclass
class Timing:
    """One timed pass over the timing prompts, each generated alone."""

    seconds: float  # mean wall time per generation
    nfe: float = 0.0
    full_passes: float = 0.0
    tokens: int = 0  # generated tokens before the first stop token, summed over the prompts


def time_generation(loaded: LoadedModel, encoded: list, config: SamplerConfig,
                    record_trajectory: bool = True) -> Timing:
    device = loaded.device
    timing = Timing(seconds=0.0)
    for input_ids, attention_mask in encoded:
        synchronize(device)
        start = time.perf_counter()
        result = generate(loaded.model, input_ids, loaded.ids, config, attention_mask=attention_mask,
                          record_trajectory=record_trajectory)
        synchronize(device)
        timing.seconds += time.perf_counter() - start
        timing.nfe += result.nfe
        timing.full_passes += result.forward_positions / (input_ids.shape[1] + config.gen_length)
        timing.tokens += len(cut_at_stop(result.tokens[0].tolist(), loaded.ids))
    count = len(encoded)
    timing.seconds, timing.nfe, timing.full_passes = timing.seconds / count, timing.nfe / count, timing.full_passes / count
    return timing


def time_plain_loop(loaded: LoadedModel, encoded: list, gen_length: int) -> Timing:
    device = loaded.device
    elapsed = 0.0
    for input_ids, _ in encoded:
        synchronize(device)
        start = time.perf_counter()
        plain_official_loop(loaded.model, input_ids, gen_length, gen_length, BLOCK_LENGTH, loaded.ids.mask)
        synchronize(device)
        elapsed += time.perf_counter() - start
    return Timing(seconds=elapsed / len(encoded))


def timing_runs(loaded: LoadedModel, prompts: list[str], length: int, repeats: int) -> dict[str, list[Timing]]:
    """Time every setting `repeats` times, interleaved, so that a change in machine load hits all of them alike."""
    encoded = [encode_prompts(loaded.tokenizer, [prompt], loaded.ids, loaded.device) for prompt in prompts]
    configs = settings(length)
    runs: dict[str, list[Timing]] = {name: [] for name in [*configs, NO_TRAJECTORY, PLAIN_LOOP]}
    for _ in range(repeats):
        for name, config in configs.items():
            runs[name].append(time_generation(loaded, encoded, config))
        runs[NO_TRAJECTORY].append(time_generation(loaded, encoded, configs["vanilla"], record_trajectory=False))
        runs[PLAIN_LOOP].append(time_plain_loop(loaded, encoded, length))
    runs[EVENT_BUILDING] = [Timing(seconds=event_building_seconds(loaded, encoded, configs["vanilla"]))]
    return runs


def event_building_seconds(loaded: LoadedModel, encoded: list, config: SamplerConfig, repeats: int = 5) -> float:
    """Return the mean seconds per generation spent turning step tensors into StepEvents."""
    elapsed = 0.0
    for input_ids, attention_mask in encoded:
        steps = list(_Denoiser(loaded.model, input_ids, loaded.ids, config, attention_mask, None).run())
        start = time.perf_counter()
        for _ in range(repeats):
            for step in steps:
                _step_event(step)
        elapsed += (time.perf_counter() - start) / repeats
    return elapsed / len(encoded)


def paired_ratio(numerators: list[Timing], denominators: list[Timing]) -> float:
    """Return the median over repeats of the ratio of two settings timed in the same repeat."""
    return statistics.median(top.seconds / bottom.seconds for top, bottom in zip(numerators, denominators))


def accuracy(loaded: LoadedModel, items, config: SamplerConfig, batch_size: int) -> tuple[float | None, int]:
    """Return the boxed-answer accuracy over `items` and the number graded (excluded gold values left out)."""
    stops = stop_strings(loaded)
    correct = graded = 0
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        for item, solution in zip(batch, solve(loaded, [item.prompt for item in batch], config)):
            verdict = grade(solution.raw_output, item.answer, stop_strings=stops)
            if not verdict.excluded:
                graded += 1
                correct += verdict.correct
    return (correct / graded if graded else None), graded


def measure(loaded: LoadedModel, items, lengths: list[int], timing_prompts: int, repeats: int,
            batch_size: int) -> tuple[list[Measurement], list[dict]]:
    """Run every setting at every length; return the main rows and the trajectory-cost rows."""
    prompts = [item.prompt for item in items[:timing_prompts]]
    rows, overhead = [], []
    for length in lengths:
        runs = timing_runs(loaded, prompts, length, repeats)
        for name, config in settings(length).items():
            timings = runs[name]
            seconds = statistics.median(timing.seconds for timing in timings)
            score, n = accuracy(loaded, items, config, batch_size)
            rows.append(Measurement(length=length, name=name, nfe=timings[0].nfe, full_passes=timings[0].full_passes,
                                    seconds=seconds, tokens_per_s=timings[0].tokens / (seconds * len(prompts)),
                                    accuracy=score, n=n))
            print(f"  {length:>4} {name:<44} NFE {timings[0].nfe:7.1f}  {seconds:.3f} s  accuracy {score}", flush=True)
        overhead.append({
            "length": length,
            "plain": statistics.median(timing.seconds for timing in runs[PLAIN_LOOP]),
            "without": statistics.median(timing.seconds for timing in runs[NO_TRAJECTORY]),
            "with": statistics.median(timing.seconds for timing in runs["vanilla"]),
            "trajectory_ratio": paired_ratio(runs["vanilla"], runs[NO_TRAJECTORY]),
            "plain_ratio": paired_ratio(runs["vanilla"], runs[PLAIN_LOOP]),
            "events": runs[EVENT_BUILDING][0].seconds,
        })
    return rows, overhead


def main_table(rows: list[Measurement]) -> str:
    lines = ["| gen_length | setting | NFE | full-pass equivalents | s / generation | generated tokens/s "
             "| accuracy | n |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        accuracy_text = "n/a" if row.accuracy is None else f"{100 * row.accuracy:.1f}%"
        lines.append(f"| {row.length} | {row.name} | {row.nfe:.1f} | {row.full_passes:.1f} | {row.seconds:.3f} "
                     f"| {row.tokens_per_s:.1f} | {accuracy_text} | {row.n} |")
    return "\n".join(lines)


def overhead_table(overhead: list[dict]) -> str:
    lines = ["| gen_length | plain official loop s | vanilla, no trajectory s | vanilla with trajectory s "
             "| trajectory cost, paired wall time | StepEvent building alone | vanilla / plain loop |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in overhead:
        lines.append(f"| {row['length']} | {row['plain']:.3f} | {row['without']:.3f} | {row['with']:.3f} "
                     f"| {100 * (row['trajectory_ratio'] - 1):+.1f}% | {1000 * row['events']:.1f} ms "
                     f"({100 * row['events'] / row['with']:.2f}%) | {row['plain_ratio']:.2f}x |")
    return "\n".join(lines)


def target_lines(rows: list[Measurement], overhead: list[dict], length: int = 128) -> list[str]:
    """Check the targets and state each with its measured figures."""
    def find(name: str) -> Measurement | None:
        return next((row for row in rows if row.length == length and row.name == name), None)

    lines = []
    vanilla, fast = find("vanilla"), find(f"threshold {THRESHOLD} + dual cache")
    if vanilla and fast:
        nfe_ratio, time_ratio = vanilla.nfe / fast.nfe, vanilla.seconds / fast.seconds
        lines.append(f"- NFE, threshold {THRESHOLD} + dual cache vs vanilla at gen_length {length}: "
                     f"{nfe_ratio:.2f}x fewer (target >= 4x): {'met' if nfe_ratio >= 4 else 'missed'}.")
        lines.append(f"- Wall time, same comparison: {time_ratio:.2f}x less (target >= 3x): "
                     f"{'met' if time_ratio >= 3 else 'missed'}.")
        if vanilla.accuracy is not None and fast.accuracy is not None:
            # Rounded first: 0.07 - 0.06 is 1.0000000000000009 points in floating point.
            points = round(100 * (fast.accuracy - vanilla.accuracy), 6)
            lines.append(f"- Accuracy, same comparison: {points:+.1f} points (target within 1 point): "
                         f"{'met' if abs(points) <= 1 else 'missed'}.")
    for row in overhead:
        cost, ratio = row["trajectory_ratio"] - 1, row["plain_ratio"]
        lines.append(f"- gen_length {row['length']}: trajectory recording costs {100 * cost:+.1f}% in paired wall "
                     f"time and {100 * row['events'] / row['with']:.2f}% measured alone (target <= 5%): "
                     f"{'met' if cost <= 0.05 else 'missed'}. Vanilla takes {ratio:.2f}x the time of the plain "
                     "loop written from the official description.")
    return lines


def report(title: str, command: str, machine: str, rows: list[Measurement], overhead: list[dict],
           notes: list[str]) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [title, "", f"Command: `{command}`", "", f"Machine: {machine}. Measured {date}.", "",
             *notes, "", main_table(rows), "", overhead_table(overhead), "", "Targets:", "",
             *target_lines(rows, overhead)]
    return "\n".join(parts) + "\n"


def machine_description(device: torch.device, load_before: float) -> str:
    torch_version = f"torch {torch.__version__}"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {torch_version}"
    return (f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
            f"{torch.get_num_threads()} torch thread(s), {torch_version}; 1-minute load average "
            f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end")


def write_subsection(path: Path, subsection: str, body: str) -> None:
    """Replace `subsection` (a "### " heading and its text) inside the "## Sampler" section of `path`."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    if SECTION not in lines:
        lines += ["", SECTION]
    start = lines.index(SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    if subsection in section:
        first = section.index(subsection)
        last = next((i for i in range(first + 1, len(section)) if section[i].startswith("### ")), len(section))
        section[first:last] = body.rstrip("\n").split("\n") + [""]
    else:
        section += [""] + body.rstrip("\n").split("\n") + [""]
    while section and not section[0].strip():
        section.pop(0)
    lines[start:end] = [""] + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")


def random_tiny_model() -> LoadedModel:
    """Return a randomly initialised small LLaDA with the bundled tokenizer, to smoke-test this script."""
    from transformers import AutoTokenizer

    from llada_cot.loading import TINY_MODEL_DIR
    from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    torch.manual_seed(0)
    config = LLaDAConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=64, vocab_size=len(tokenizer),
                         max_sequence_length=1024, rope_theta=10000.0, mask_token_id=tokenizer.mask_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LLaDAModelLM(config).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, ids=special_ids(tokenizer, config), reference="random")


def parse_arguments(argv: list[str] | None, lengths: list[int], limit: int | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=lengths, help="generation lengths (tokens)")
    parser.add_argument("--test-file", type=Path, default=REPO / "datasets" / "test.jsonl",
                        help="JSONL test file for the accuracy column")
    parser.add_argument("--limit", type=int, default=limit,
                        help="grade only the first N test items (default: all)")
    parser.add_argument("--timing-prompts", type=int, default=8,
                        help="prompts timed one at a time for the speed columns")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats; the median is reported")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per batch in the accuracy runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 avoids OpenMP spin-waits when other jobs share the cores")
    parser.add_argument("--no-docs", action="store_true", help="print the tables without writing docs/benchmarks.md")
    parser.add_argument("--random-weights", action="store_true",
                        help="use a random tiny model to smoke-test this script; implies --no-docs")
    return parser.parse_args(argv)


def command_line(argv: list[str] | None) -> str:
    arguments = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *arguments]).strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv, lengths=[64, 128, 256], limit=None)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    loaded = random_tiny_model() if args.random_weights else load_model("tiny", device="cpu")
    items = read_test_file(args.test_file).items[:args.limit] if args.limit else read_test_file(args.test_file).items
    print(f"{len(items)} test items, {args.timing_prompts} timing prompts, {args.repeats} repeats", flush=True)
    rows, overhead = measure(loaded, items, args.lengths, args.timing_prompts, args.repeats, args.batch_size)
    notes = [f"Settings: block_length {BLOCK_LENGTH}, temperature 0, low_confidence, no CFG; vanilla runs "
             "steps = gen_length. Speed columns: each of the first "
             f"{args.timing_prompts} test prompts generated alone (batch 1), median of {args.repeats} repeats. "
             f"Accuracy: boxed answers of the first {len(items)} items of {args.test_file.name}, batches of "
             f"{args.batch_size}. The settings are timed in turn within each repeat, and the trajectory cost "
             "and the ratio to the plain loop are medians of per-repeat ratios. The bundled model was trained "
             "with 48 response positions, so longer generations are outside its training."]
    text = report(TINY_SUBSECTION, command_line(argv), machine_description(loaded.device, load_before), rows, overhead, notes)
    print(text)
    if not (args.no_docs or args.random_weights):
        write_subsection(DOCS, TINY_SUBSECTION, text)
        print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
