"""Measure how fast a fresh tiny LLaDA learns the one-digit sums alone with the SFT loss.

A model of the bundled size (or the sizes given) starts from random weights.
It trains on nothing but "What is a + b?" problems, a from 2 to 9 and b from 1
to 9 (72 facts), with the project's step-wise collator and LLaDA SFT loss. Every
--probe-every steps it prints the share of the 72 sums whose result one forward
pass predicts right when "a + b =" is given and the rest of the window is
masked. It shows how many steps the lookup takes at this size, apart from
reading word problems.

    python benchmarks/bench_sum_learning.py --steps 1200
    python benchmarks/bench_sum_learning.py --steps 800 --weight-decay 0.01
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never download

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llada_cot.loading import TINY_MODEL_DIR, LoadedModel, special_ids  # noqa: E402
from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM  # noqa: E402
from llada_cot.training import SFTCollator, build_items, sft_loss  # noqa: E402
from scripts.probe_arithmetic import probe_lines  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

SUMS = [(a, b) for a in range(2, 10) for b in range(1, 10)]


def sum_record(a: int, b: int) -> dict:
    return {"prompt": f"What is {a} + {b}?", "rationales": [f"{a} + {b} = {a + b}"], "answer": f"\\boxed{{{a + b}}}"}


def sum_accuracy(loaded: LoadedModel, gen_length: int) -> float:
    """Return the share of SUMS whose result the model predicts in one pass, as the arithmetic probe scores it."""
    counts = probe_lines(loaded, [sum_record(a, b) for a, b in SUMS], gen_length)
    return sum(right for right, _ in counts.values()) / len(SUMS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--pad-response-to", type=int, default=48, help="response tokens per sequence")
    parser.add_argument("--d-model", type=int, default=192)
    parser.add_argument("--n-layers", type=int, default=6)
    parser.add_argument("--mlp-hidden-size", type=int, default=512)
    parser.add_argument("--probe-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    config = LLaDAConfig(
        d_model=args.d_model, n_layers=args.n_layers, n_heads=4, mlp_hidden_size=args.mlp_hidden_size,
        vocab_size=len(tokenizer), embedding_size=len(tokenizer), rope_theta=10000.0,
        mask_token_id=tokenizer.mask_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LLaDAModelLM(config)
    ids = special_ids(tokenizer, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    collator = SFTCollator(ids, stratified=True)
    rng = random.Random(args.seed)

    print(f"torch threads {torch.get_num_threads()}, {sum(p.numel() for p in model.parameters()):,} parameters")
    print("step  loss    sums right  seconds")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        items = []
        for _ in range(args.batch_size):
            a, b = rng.randint(2, 9), rng.randint(1, 9)
            items.append(rng.choice(build_items(sum_record(a, b), tokenizer, ids, "stepwise", args.pad_response_to)))
        batch = collator(items)
        logits = model(batch["input_ids"]).logits
        loss = sft_loss(logits, batch["target_ids"], batch["masked"], batch["p_mask"], batch["response_length"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.probe_every == 0:
            model.eval()
            loaded = LoadedModel(model=model, tokenizer=tokenizer, ids=ids, reference="sum-learning")
            accuracy = sum_accuracy(loaded, args.pad_response_to)
            model.train()
            print(f"{step:>4}  {loss.item():.4f}  {accuracy:>10.1%}  {time.perf_counter() - start:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
