"""Run the sampler benchmark of bench_sampler.py on GSAI-ML/LLaDA-8B-Instruct with a CUDA GPU.

The weights must already be in the Hugging Face cache: this script sets
HF_HUB_OFFLINE=1 unless the environment sets it, so it never downloads. It
exits with code 2 and a one-line message when no CUDA GPU is visible or the
weights do not load.

    python benchmarks/bench_sampler_8b.py --limit 100
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

import bench_sampler  # the sibling script; python puts this folder first on sys.path
from llada_cot.loading import DEFAULT_GPU_MODEL, ModelLoadError, load_model

SUBSECTION = "### LLaDA-8B-Instruct"


def main(argv: list[str] | None = None) -> int:
    args = bench_sampler.parse_arguments(argv, lengths=[128, 256], limit=100)
    load_before = os.getloadavg()[0]
    if not torch.cuda.is_available():
        print("bench_sampler_8b: no CUDA GPU is visible; run it on a machine with one.", file=sys.stderr)
        return 2
    try:
        loaded = load_model(DEFAULT_GPU_MODEL, device="cuda")
    except ModelLoadError as error:
        message = str(error).replace("\n", " ")
        print(f"bench_sampler_8b: {DEFAULT_GPU_MODEL} did not load from the local Hugging Face cache "
              f"(HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}): {message}", file=sys.stderr)
        return 2

    test_file = bench_sampler.read_test_file(args.test_file)
    items = test_file.items[:args.limit] if args.limit else test_file.items
    print(f"{len(items)} test items, {args.timing_prompts} timing prompts, {args.repeats} repeats", flush=True)
    rows, overhead = bench_sampler.measure(loaded, items, args.lengths, args.timing_prompts, args.repeats,
                                           args.batch_size)
    notes = [f"Settings: block_length {bench_sampler.BLOCK_LENGTH}, temperature 0, low_confidence, no CFG, "
             "bfloat16; vanilla runs steps = gen_length. Speed columns: each of the first "
             f"{args.timing_prompts} test prompts generated alone (batch 1), median of {args.repeats} repeats. "
             f"Accuracy: boxed answers of the first {len(items)} items of {args.test_file.name}, batches of "
             f"{args.batch_size}. The settings are timed in turn within each repeat, and the trajectory "
             "cost and the ratio to the plain loop are medians of per-repeat ratios."]
    text = bench_sampler.report(SUBSECTION, bench_sampler.command_line(argv),
                                bench_sampler.machine_description(loaded.device, load_before), rows, overhead, notes)
    print(text)
    if not args.no_docs:
        bench_sampler.write_subsection(bench_sampler.DOCS, SUBSECTION, text)
        print(f"wrote {bench_sampler.DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
