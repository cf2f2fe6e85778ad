"""Measure evaluation throughput (items per second) for several batch sizes on the bundled tiny model.

Each batch size solves the same first `--limit` items of the test file through
`evaluate_file`, the code path of `python -m llada_cot solve` and the Evaluate
tab, so the time includes encoding, denoising, decoding, grading and writing
the results. Items per second is the median over `--repeats` runs. The script
also checks that every batch size gives the same rows as batch size 1 (tokens,
answers, steps and NFE; confidences within 1e-4) and exits with status 1 when
they differ. A breakdown shows the share of the time spent in the model's
forward passes and the forward time per item and step.

    python benchmarks/bench_batch.py                       # 64 items, batch sizes 1 4 16, 3 repeats
    python benchmarks/bench_batch.py --limit 16 --repeats 1 --random-weights   # smoke test
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never download

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llada_cot.data import read_test_file  # noqa: E402
from llada_cot.evaluation import evaluate_file, read_finished_rows, result_differences  # noqa: E402
from llada_cot.loading import LoadedModel, encode_chat_prompt, load_model, special_ids  # noqa: E402
from llada_cot.sampling import SamplerConfig  # noqa: E402

DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Evaluation"
SUBSECTION = "### Items per second by batch size"
TARGET_SPEED_UP = 3.0  # batch 16 against batch 1


@dataclass
class Measurement:
    """Median throughput of one batch size, with the forward-pass share of the time."""

    batch_size: int
    items_per_s: float
    seconds: float  # median wall time of the whole run
    forward_share: float  # forward-pass time / wall time, of the median run
    forward_ms_per_item_step: float  # forward time per item per denoising step
    mean_nfe: float
    accuracy: float | None
    identical: bool  # rows equal those of batch size 1
    padding: float  # positions run per step with left padding / positions without, minus 1


class ForwardTimer:
    """Wrap a model's forward to add up the wall time spent in it."""

    def __init__(self, model: torch.nn.Module):
        self.seconds = 0.0
        self._forward = model.forward
        model.forward = self._timed

    def _timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._forward(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def padding_overhead(loaded: LoadedModel, prompts: list[str], gen_length: int, batch_size: int) -> float:
    """Return the share of extra positions a forward pass runs because prompts are padded to the batch's longest."""
    lengths = [len(encode_chat_prompt(loaded.tokenizer, prompt)) + gen_length for prompt in prompts]
    padded = sum(max(lengths[start:start + batch_size]) * len(lengths[start:start + batch_size])
                 for start in range(0, len(lengths), batch_size))
    return padded / sum(lengths) - 1


def measure(loaded: LoadedModel, test_file, config: SamplerConfig, batch_sizes: list[int], limit: int,
            repeats: int, folder: Path) -> list[Measurement]:
    timer = ForwardTimer(loaded.model)
    # One untimed batch warms up the allocator and the kernels.
    largest = max(batch_sizes)
    evaluate_file(loaded, test_file, config, folder / "warm-up.jsonl", batch_size=largest, limit=largest)
    reference_rows = None
    measurements = []
    for batch_size in batch_sizes:
        runs = []
        output = folder / f"batch-{batch_size}.jsonl"
        for _ in range(repeats):
            timer.seconds = 0.0
            start = time.perf_counter()
            summary = evaluate_file(loaded, test_file, config, output, batch_size=batch_size, limit=limit)
            runs.append((time.perf_counter() - start, timer.seconds, summary))
        runs.sort(key=lambda run: run[0])
        seconds, forward_seconds, summary = runs[len(runs) // 2]
        rows = read_finished_rows(output)
        if reference_rows is None:
            reference_rows = rows
        differences = result_differences(reference_rows, rows)
        for difference in differences:
            print(f"batch {batch_size} differs from batch {batch_sizes[0]}: {difference}", flush=True)
        n_items = len(rows)
        measurement = Measurement(
            batch_size=batch_size, items_per_s=n_items / seconds, seconds=seconds,
            forward_share=forward_seconds / seconds, mean_nfe=summary["mean_nfe"],
            forward_ms_per_item_step=1000 * forward_seconds / (n_items * summary["mean_nfe"]),
            accuracy=summary["accuracy"], identical=not differences,
            padding=padding_overhead(loaded, [row["prompt"] for row in rows], config.gen_length, batch_size),
        )
        measurements.append(measurement)
        print(f"batch {batch_size}: {measurement.items_per_s:.2f} items/s "
              f"(runs {', '.join(f'{run[0]:.1f}' for run in runs)} s)", flush=True)
    return measurements


def table(measurements: list[Measurement]) -> str:
    base = measurements[0].items_per_s
    lines = ["| batch size | items/s | speed-up vs batch 1 | wall time s | forward share | "
             "forward ms per item-step | padding | mean NFE | accuracy | rows equal batch 1 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for row in measurements:
        accuracy = "n/a" if row.accuracy is None else f"{row.accuracy:.1%}"
        lines.append(f"| {row.batch_size} | {row.items_per_s:.2f} | {row.items_per_s / base:.2f}x | "
                     f"{row.seconds:.1f} | {row.forward_share:.0%} | {row.forward_ms_per_item_step:.2f} | "
                     f"+{row.padding:.0%} | {row.mean_nfe:.1f} | {accuracy} | {'yes' if row.identical else 'NO'} |")
    return "\n".join(lines)


def findings(measurements: list[Measurement]) -> str:
    """State the speed-up against the target and the measured figures behind it."""
    first, last = measurements[0], measurements[-1]
    speed_up = last.items_per_s / first.items_per_s
    verdict = "meets" if speed_up >= TARGET_SPEED_UP else "misses"
    return (f"Batch {last.batch_size} solves {last.items_per_s:.2f} items/s, {speed_up:.2f}x batch "
            f"{first.batch_size}, so it {verdict} the {TARGET_SPEED_UP:g}x target. Forward passes take "
            f"{first.forward_share:.0%} of the wall time at batch {first.batch_size} and {last.forward_share:.0%} at "
            f"batch {last.batch_size}. The forward time per item and denoising step is "
            f"{first.forward_ms_per_item_step:.2f} ms at batch {first.batch_size} and "
            f"{last.forward_ms_per_item_step:.2f} ms at batch {last.batch_size}. Padding every prompt to the "
            f"longest in its batch adds {last.padding:.0%} positions at batch {last.batch_size}.")


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return (f"{os.cpu_count()}-core CPU ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, Python {platform.python_version()}")


def random_tiny_model() -> LoadedModel:
    """Return a randomly initialised small LLaDA with the bundled tokenizer, to smoke-test this script."""
    from transformers import AutoTokenizer

    from llada_cot.loading import TINY_MODEL_DIR
    from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    torch.manual_seed(0)
    config = LLaDAConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=64, vocab_size=len(tokenizer),
                         embedding_size=len(tokenizer), max_sequence_length=512, rope_theta=10000.0,
                         mask_token_id=tokenizer.mask_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LLaDAModelLM(config).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, ids=special_ids(tokenizer, config), reference="random",
                       sampler_defaults={"gen_length": 48, "steps": 48, "block_length": 16})


def write_subsection(path: Path, body: str) -> None:
    """Replace the generated subsection of the "## Evaluation" section of `path`, or add it.

    Other sections, and other subsections of "## Evaluation", are kept as they are.
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    if SECTION not in lines:
        lines += ["", SECTION]
    start = lines.index(SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    generated = [SUBSECTION, ""] + body.rstrip("\n").split("\n") + [""]
    if SUBSECTION in section:
        first = section.index(SUBSECTION)
        last = next((i for i in range(first + 1, len(section)) if section[i].startswith("### ")), len(section))
        section[first:last] = generated
    else:
        section[0:0] = [""] + generated
    lines[start:end] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-file", type=Path, default=REPO / "datasets" / "test.jsonl")
    parser.add_argument("--limit", type=int, default=64, help="items solved per run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3, help="runs per batch size; the median is reported")
    parser.add_argument("--random-weights", action="store_true",
                        help="use a random tiny model instead of the bundled one (smoke test, never written to docs)")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"replace the '{SUBSECTION}' part of the '{SECTION}' section of {DOCS}")
    args = parser.parse_args(argv)

    loaded = random_tiny_model() if args.random_weights else load_model("tiny", device="cpu")
    config = SamplerConfig(**loaded.sampler_defaults).validate()
    test_file = read_test_file(args.test_file)
    print(f"{machine_description()}; {args.limit} items of {args.test_file.name}, {args.repeats} repeats; "
          f"sampler {config}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        measurements = measure(loaded, test_file, config, args.batch_sizes, args.limit, args.repeats, Path(folder))

    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = f"{threads}python benchmarks/bench_batch.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = "\n".join([
        f"- Command: `{command.strip()}`",
        f"- Machine: {machine_description()}. Date: {datetime.date.today().isoformat()}. Load average of the "
        f"machine when the runs ended: {' '.join(f'{load:.1f}' for load in os.getloadavg())} (1, 5, 15 minutes).",
        f"- Model: {loaded.reference}; sampler: its defaults (gen_length {config.gen_length}, steps {config.steps}, "
        f"block_length {config.block_length}, temperature {config.temperature:g}, {config.remasking}). "
        f"Each run solves the first {args.limit} items of {args.test_file.name} through `evaluate_file`; "
        f"items/s is the median of {args.repeats} runs.",
        "",
        table(measurements),
        "",
        "Forward share is the time inside the model's forward passes over the wall time. Forward ms per "
        "item-step is that time per item and denoising step. Padding is the share of extra positions run "
        "because prompts are left-padded to the longest in their batch.",
        "",
        findings(measurements),
    ])
    print(body)
    if args.write_docs and not args.random_weights:
        write_subsection(DOCS, body)
        print(f"wrote {DOCS}")
    speed_up = measurements[-1].items_per_s / measurements[0].items_per_s
    print(f"batch {measurements[-1].batch_size} / batch {measurements[0].batch_size}: {speed_up:.2f}x "
          f"(target {TARGET_SPEED_UP:.0f}x)")
    return 0 if all(row.identical for row in measurements) else 1


if __name__ == "__main__":
    sys.exit(main())
