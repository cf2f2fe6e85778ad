"""Train the bundled tiny LLaDA model from scratch on synthetic arithmetic problems.

    python -m scripts.train_tiny_model --output assets/tiny-llada

It builds the tokenizer, streams seeded problems (never one whose prompt is in
the test file) through the step-wise LLaDA SFT collator, and trains with the
project's `LLaDASFTTrainer`, so pre-training and fine-tuning share one loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import time
from pathlib import Path

import torch
from torch.utils.data import IterableDataset
from transformers import TrainerCallback, TrainingArguments

from llada_cot.loading import SAMPLER_DEFAULTS_FILE, special_ids
from llada_cot.modeling_llada import LLaDAConfig, LLaDAModelLM
from llada_cot.synthetic import ProblemConfig, iter_problems, make_splits
from llada_cot.sampling import SamplerConfig
from llada_cot.training import LLaDASFTTrainer, SFTCollator, build_items

from scripts.build_tiny_tokenizer import build_tokenizer

logger = logging.getLogger(__name__)


class ProblemStream(IterableDataset):
    """Endless step-wise training items; each record contributes one random prefix split."""

    def __init__(self, tokenizer, ids, seed: int, exclude: frozenset[str], pad_response_to: int,
                 config: ProblemConfig):
        self.tokenizer, self.ids, self.seed = tokenizer, ids, seed
        self.exclude, self.pad_response_to, self.config = exclude, pad_response_to, config

    def __iter__(self):
        rng = random.Random(self.seed)
        for record in iter_problems(self.seed, self.config, exclude=self.exclude):
            items = build_items(record, self.tokenizer, self.ids, "stepwise", self.pad_response_to)
            item = rng.choice(items)
            yield {"input_ids": item.input_ids, "n_clean": item.n_clean}


class StopAfter(TrainerCallback):
    """End training after a fixed number of steps without changing the learning-rate schedule."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            control.should_training_stop = True
        return control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for the model, tokenizer and log")
    parser.add_argument("--test-file", type=Path, default=Path("datasets/test.jsonl"),
                        help="test problems the training stream must never contain")
    parser.add_argument("--d-model", type=int, default=192)
    parser.add_argument("--n-layers", type=int, default=6)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--mlp-hidden-size", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--stratified-t", action=argparse.BooleanOptionalAction, default=True,
                        help="draw each batch's masking ratios from equal slices of (0, 1) for a lower-variance loss")
    parser.add_argument("--pad-response-to", type=int, default=48,
                        help="response tokens per sequence (EOS padding included); match the default gen_length")
    parser.add_argument("--block-length", type=int, default=16,
                        help="block length of the sampler settings saved with the model")
    parser.add_argument("--max-operand", type=int, default=ProblemConfig.max_operand,
                        help="largest + and - operand of the training problems")
    parser.add_argument("--direct-fraction", type=float, default=ProblemConfig.direct_fraction,
                        help='share of bare "What is a + b?" problems in the training stream')
    parser.add_argument("--max-direct-first", type=int, default=None,
                        help="largest first number of the bare problems (default: --max-operand)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from this checkpoint's weights instead of a random initialisation")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after this many steps while keeping the --max-steps learning-rate schedule")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the problem stream (the train split's seed)")
    parser.add_argument("--save-steps", type=int, default=1000, help="steps between checkpoints")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("runs/tiny-pretrain"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.manual_seed(args.seed)

    tokenizer = build_tokenizer(vocab_size=512, n_problems=20000, seed=0)
    config = LLaDAConfig(
        d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
        mlp_hidden_size=args.mlp_hidden_size, vocab_size=len(tokenizer), embedding_size=len(tokenizer),
        max_sequence_length=512, rope_theta=10000.0,
        mask_token_id=tokenizer.mask_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LLaDAModelLM.from_pretrained(args.init_from) if args.init_from else LLaDAModelLM(config)
    ids = special_ids(tokenizer, config)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("training a %.2fM-parameter model", n_params / 1e6)

    problems = ProblemConfig(max_operand=args.max_operand, direct_fraction=args.direct_fraction,
                             max_direct_first=args.max_direct_first)
    # Never train on a test prompt: neither the test file's nor the test split drawn for these problems.
    test_prompts = {json.loads(line)["prompt"] for line in args.test_file.read_text().splitlines() if line}
    test_prompts |= {record["prompt"] for record in make_splits(0, 500, args.seed, problems)[1]}
    stream = ProblemStream(tokenizer, ids, args.seed, frozenset(test_prompts), args.pad_response_to, problems)
    training_args = TrainingArguments(
        output_dir=str(args.checkpoint_dir), max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
        max_grad_norm=1.0, logging_steps=100, save_steps=args.save_steps, save_total_limit=2,
        report_to=[], remove_unused_columns=False, use_cpu=True, dataloader_pin_memory=False,
        seed=args.seed,
    )
    callbacks = [StopAfter(args.stop_after)] if args.stop_after else []
    trainer = LLaDASFTTrainer(model=model, args=training_args, train_dataset=stream,
                              data_collator=SFTCollator(ids, stratified=args.stratified_t), callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start

    args.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    # The sampler settings the model was trained for become its defaults on the page and in the CLI.
    sampler_defaults = SamplerConfig(gen_length=args.pad_response_to, steps=args.pad_response_to,
                                     block_length=args.block_length).validate()
    (args.output / SAMPLER_DEFAULTS_FILE).write_text(json.dumps(
        {key: value for key, value in dataclasses.asdict(sampler_defaults).items() if key != "seed"}, indent=2) + "\n")
    summary = {"parameters": n_params, "train_seconds": round(elapsed), "steps": trainer.state.global_step,
               "command_args": {key: str(value) for key, value in vars(args).items()},
               "batch_size": args.batch_size, "log": trainer.state.log_history}
    (args.output / "training_summary.json").write_text(json.dumps(summary, indent=1))
    logger.info("saved the model to %s after %.0f s", args.output, elapsed)


if __name__ == "__main__":
    main()
