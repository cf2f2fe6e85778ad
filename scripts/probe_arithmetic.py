"""Measure how often a model computes each rationale line's result when the line's operands are given.

    python -m scripts.probe_arithmetic --model tiny --data datasets/train.jsonl
    python -m scripts.probe_arithmetic --data workspace/sharing/demo_train.jsonl --adapter workspace/adapters/sharing

For every line ``a op b = c`` of the first --limit records, the model's input
has the prompt, the earlier lines and ``a op b =`` as clean tokens, with the
rest of the generation window masked. One forward pass then predicts the result, and
the line counts as right when the argmax tokens at the result's positions spell
`` c``. The sampler never enters, so the figure separates arithmetic from the
order in which tokens are committed. It prints the accuracy per line index and
operator.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from llada_cot.adapters import load_with_adapter
from llada_cot.loading import encode_chat_prompt, load_model

EQUALS = " = "


def probe_lines(loaded, records: list[dict], gen_length: int) -> dict[tuple[int, str], list[int]]:
    """Return {(line index, operator): [n_right, n_lines]} over the records' rationale lines."""
    tokenizer, model, ids = loaded.tokenizer, loaded.model, loaded.ids
    counts: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        prompt = encode_chat_prompt(tokenizer, record["prompt"])
        earlier: list[int] = []
        for index, line in enumerate(record["rationales"]):
            if EQUALS not in line:
                break
            left, result = line.rsplit(EQUALS, 1)
            context = prompt + earlier + tokenizer.encode(left + EQUALS.rstrip(), add_special_tokens=False)
            target = tokenizer.encode(" " + result, add_special_tokens=False)
            n_masked = len(prompt) + gen_length - len(context)
            if n_masked < len(target):
                break
            input_ids = torch.tensor([context + [ids.mask] * n_masked], device=model.device)
            with torch.no_grad():
                logits = model(input_ids).logits[0, len(context):len(context) + len(target)]
            operator = left.split()[1] if len(left.split()) == 3 else "?"
            counts[(index, operator)][0] += int(logits.argmax(-1).tolist() == target)
            counts[(index, operator)][1] += 1
            earlier += tokenizer.encode(line + "\n", add_special_tokens=False)
    return dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="model reference: 'tiny', a local folder or a Hub id")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter folder to load onto the model")
    parser.add_argument("--data", type=Path, default=Path("datasets/train.jsonl"),
                        help="training-format JSONL whose rationale lines are probed")
    parser.add_argument("--limit", type=int, default=600, help="number of records to probe, from the top")
    parser.add_argument("--gen-length", type=int, default=None,
                        help="generation window in tokens (default: the model's sampler default)")
    args = parser.parse_args()

    loaded = load_model(args.model)
    if args.adapter is not None:
        loaded = load_with_adapter(loaded, args.adapter)
    gen_length = args.gen_length or int(loaded.sampler_defaults.get("gen_length", 128))
    lines = [line for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines[:args.limit]]
    counts = probe_lines(loaded, records, gen_length)

    print(f"{'line':>4} {'op':>2} {'right':>6} {'lines':>6} {'accuracy':>8}")
    for (index, operator), (right, total) in sorted(counts.items()):
        print(f"{index + 1:>4} {operator:>2} {right:>6} {total:>6} {right / total:>8.1%}")
    right, total = (sum(value[i] for value in counts.values()) for i in (0, 1))
    print(f"all lines: {right} of {total} ({right / max(total, 1):.1%})")


if __name__ == "__main__":
    main()
