"""Command-line entry points: ``python -m llada_cot generate | solve | train``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from llada_cot.data import TRAINING_MODES, DataFileError, read_test_file, read_training_file
from llada_cot.evaluation import evaluate_file, read_finished_rows, solve
from llada_cot.adapters import load_with_adapter
from llada_cot.loading import LoadedModel, ModelLoadError, default_reference, load_model
from llada_cot.sampling import CACHE_MODES, REMASKING_RULES, SamplerConfig

logger = logging.getLogger("llada_cot")

# Exit status after Ctrl-C, 128 + SIGINT as shells report it.
EXIT_INTERRUPTED = 130

SAMPLER_HELP = {
    "gen_length": "number of positions to generate (tokens)",
    "steps": "denoising steps in total, split over the blocks",
    "block_length": "positions per semi-autoregressive block; equal to gen_length for one block",
    "temperature": "0 for greedy decoding; above 0 samples with Gumbel noise",
    "cfg_scale": "classifier-free guidance scale; 0 turns it off (each step then costs one forward pass, not two)",
    "remasking": f"which predictions to commit first: {', '.join(REMASKING_RULES)}",
    "seed": "random seed for sampling and random remasking",
    "threshold": "confidence-threshold parallel decoding: commit every position above this probability "
                 "(0 < t <= 1); steps is then ignored",
    "cache": "block key/value cache: none, prefix or dual",
    "suppress_eos_logits": "never predict end-of-text (forces long answers)",
    "suppress_stop_confidence": "commit end-of-text and end-of-turn predictions last, at every temperature",
    "early_stop": "end the run once every remaining position would be end-of-text",
    "constraints": "words fixed at offsets of the answer, such as \"0:Once, 5:upon\"",
}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help=f"'tiny' (bundled), a local folder or a Hub id; default: {default_reference()!r} here")
    parser.add_argument("--device", default=None, help="torch device, such as cpu or cuda:0 (default: cuda if present)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow models that are not LLaDA to run code from their repository")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="folder of a LoRA adapter (from the train command) to merge into the model")


def load_for_args(args: argparse.Namespace) -> LoadedModel:
    """Load --model on --device, with --adapter merged in when given."""
    loaded = load_model(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    if args.adapter is not None:
        loaded = load_with_adapter(loaded, args.adapter)
    return loaded


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per SamplerConfig field; unset flags take the model's defaults."""
    group = parser.add_argument_group("sampler")
    for spec in dataclasses.fields(SamplerConfig):
        flag = "--" + spec.name.replace("_", "-")
        type_name = str(spec.type).split(" ")[0]  # "int | None" -> "int"
        if type_name == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=SAMPLER_HELP.get(spec.name))
        else:
            kind = {"int": int, "float": float, "str": str}.get(type_name, str)
            # Named choices are checked by argparse, before a model that may take minutes to load.
            choices = {"remasking": REMASKING_RULES, "cache": CACHE_MODES}.get(spec.name)
            group.add_argument(flag, type=kind, default=None, choices=choices, help=SAMPLER_HELP.get(spec.name))


def sampler_config(args: argparse.Namespace, defaults: dict) -> SamplerConfig:
    """Combine explicit flags, the model's defaults and SamplerConfig's defaults; validate."""
    values = {}
    for spec in dataclasses.fields(SamplerConfig):
        value = getattr(args, spec.name, None)
        if value is not None:
            values[spec.name] = value
        elif spec.name in defaults:
            values[spec.name] = defaults[spec.name]
    return SamplerConfig(**values).validate()


def run_generate(args: argparse.Namespace) -> int:
    if not args.prompt.strip():
        raise ValueError("--prompt is empty; pass the problem to solve, for example --prompt 'What is 2 + 3?'.")
    loaded = load_for_args(args)
    config = sampler_config(args, loaded.sampler_defaults)
    for note in config.notes:
        logger.warning(note)
    solution = solve(loaded, [args.prompt], config)[0]
    if args.json:
        payload = {
            "text": solution.text, "answer": solution.answer, "nfe": solution.nfe,
            "elapsed_s": round(solution.elapsed_s, 4), "generated_tokens": solution.generated_tokens,
            "tokens_per_s": round(solution.tokens_per_s, 2), "notes": solution.notes,
            "sampler": dataclasses.asdict(config), "trajectory": solution.trajectory,
        }
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(solution.text)
        print(f"\nanswer: {solution.answer}  |  NFE {solution.nfe}  |  {solution.elapsed_s:.2f} s  |  "
              f"{solution.tokens_per_s:.1f} generated tokens/s", file=sys.stderr)
    return 0


def run_solve(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.limit is not None and args.limit < 0:
        raise ValueError(f"--limit must be 0 (all items) or more, got {args.limit}.")
    if args.output.is_file() and args.output.stat().st_size and not (args.resume or args.overwrite):
        raise ValueError(f"{args.output} already contains results; pass --resume to continue that run or "
                         "--overwrite to replace it.")
    test_file = read_test_file(args.data)
    logger.info("%s: %d items in %s format", args.data, len(test_file.items), test_file.format)
    for warning in test_file.warnings:
        logger.warning(warning)
    loaded = load_for_args(args)
    config = sampler_config(args, loaded.sampler_defaults)
    for note in config.notes:
        logger.warning(note)
    total = min(len(test_file.items), args.limit) if args.limit else len(test_file.items)
    try:
        with tqdm(total=total, desc="solving", unit="item") as bar:
            def advance(row: dict, done: int, total_items: int) -> None:
                bar.n = done
                bar.refresh()

            summary = evaluate_file(loaded, test_file, config, args.output, batch_size=args.batch_size,
                                    limit=args.limit, resume=args.resume, on_item=advance)
    except KeyboardInterrupt:
        # Complete lines stay in the file for --resume, and read_finished_rows skips a torn last line.
        written = len(read_finished_rows(args.output))
        print(f"Interrupted: {written} of {total} items are written to {args.output}; run the command again "
              "with --resume to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary["sampler"] = dataclasses.asdict(config)
    summary["model"] = loaded.reference
    print(json.dumps(summary, ensure_ascii=False))
    return 0


# FineTuneConfig fields set by `train` flags, with their help text; unset flags keep the
# model's defaults (or, with --resume, the run's saved settings).
TRAIN_FLAGS = {
    "mode": (str, f"training items per record: {' or '.join(TRAINING_MODES)} (stepwise: one per rationale prefix)"),
    "lora_r": (int, "rank of the LoRA updates"),
    "lora_alpha": (int, "LoRA scaling numerator; the update is scaled by alpha / r"),
    "lora_dropout": (float, "dropout on the LoRA input, 0 to below 1"),
    "learning_rate": (float, "peak learning rate of the AdamW optimizer"),
    "max_steps": (int, "optimizer steps to train; overrides --epochs"),
    "epochs": (float, "passes over the training items when --max-steps is not set"),
    "batch_size": (int, "sequences per process and forward pass"),
    "gradient_accumulation": (int, "forward passes per optimizer step"),
    "warmup_ratio": (float, "share of the steps with a linearly rising learning rate"),
    "save_steps": (int, "optimizer steps between checkpoints (what --resume continues from)"),
    "logging_steps": (int, "optimizer steps per row of train_log.jsonl"),
    "seed": (int, "random seed of the LoRA initialisation, data order and masking"),
    "pad_response_to": (int, "pad each response with end-of-text to this many tokens; 0 pads to the batch"),
}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help='training JSONL: {"prompt", "rationales": [...], "answer"} per line')
    parser.add_argument("--output", type=Path, required=True,
                        help="run folder for the adapter, train_log.jsonl and checkpoints")
    parser.add_argument("--model", default=None,
                        help=f"base model: 'tiny' (bundled), a local folder or a Hub id; default: {default_reference()!r} here")
    parser.add_argument("--device", default=None, help="torch device, such as cpu or cuda:0 (default: cuda if present)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow models that are not LLaDA to run code from their repository")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --output from its last checkpoint, with its saved settings")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in --output, deleting its checkpoints; the old adapter stays until the new one is saved")
    group = parser.add_argument_group("fine-tuning settings")
    for name, (kind, help_text) in TRAIN_FLAGS.items():
        choices = TRAINING_MODES if name == "mode" else None
        group.add_argument("--" + name.replace("_", "-"), type=kind, default=None, choices=choices, help=help_text)
    group.add_argument("--target-modules", default=None,
                       help="comma-separated layer names that get LoRA (default: q_proj,k_proj,v_proj,attn_out,"
                            "ff_proj,up_proj,ff_out, every linear layer of LLaDA)")
    group.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                       help="recompute activations in the backward pass to save memory (default: on for large "
                            "models on a GPU)")


def train_config(args: argparse.Namespace, loaded: LoadedModel):
    """Combine explicit flags with the saved run's settings (--resume) or the model's defaults."""
    from llada_cot.finetune import default_config, saved_config

    base = saved_config(args.output) if args.resume else None
    if base is None:
        base = default_config(loaded)
    changes = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    if args.target_modules is not None:
        changes["target_modules"] = tuple(name.strip() for name in args.target_modules.split(",") if name.strip())
    if args.gradient_checkpointing is not None:
        changes["gradient_checkpointing"] = args.gradient_checkpointing
    if args.epochs is not None and args.max_steps is None:
        changes["max_steps"] = None  # epochs given alone replace the default step count
    return dataclasses.replace(base, **changes).validate()


def run_train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from llada_cot.finetune import RunExistsError, fine_tune

    training_file = read_training_file(args.data)
    for warning in training_file.warnings:
        logger.warning(warning)
    loaded = load_model(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    config = train_config(args, loaded)
    logger.info("%s: %d records, %d %s training items", args.data, len(training_file.records),
                training_file.n_items(config.mode), config.mode)

    # The first Ctrl-C stops after the current step and saves; a second one aborts.
    stop = threading.Event()

    def request_stop(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        logger.warning("stopping after the current step; press Ctrl-C again to abort without saving")
        stop.set()

    previous_handler = signal.signal(signal.SIGINT, request_stop)
    try:
        result = fine_tune(loaded, args.data, config, args.output, resume=args.resume, overwrite=args.overwrite,
                           stop_event=stop, progress_bar=True, training_file=training_file)
    except RunExistsError as error:
        raise ValueError(f"{error} Pass --resume to continue it or --overwrite to start again.") from error
    except KeyboardInterrupt:
        report_aborted_training(args.output)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    if PartialState().is_main_process:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        if stop.is_set():
            print(f"Stopped by Ctrl-C at step {result.global_step} of {result.max_steps}; the adapter and a "
                  f"checkpoint are saved in {args.output}, and the command run again with --resume continues "
                  "from it.", file=sys.stderr)
    return EXIT_INTERRUPTED if stop.is_set() else 0


def report_aborted_training(output: Path) -> None:
    """Print which checkpoint an aborted `train` run keeps and how to continue, on the main process only."""
    from transformers.trainer_utils import get_last_checkpoint

    from llada_cot.finetune import CHECKPOINTS_DIR

    # torchrun and accelerate set RANK. PartialState is not used here because the other
    # processes may already have exited.
    if os.environ.get("RANK", "0") != "0":
        return
    checkpoints = output / CHECKPOINTS_DIR
    checkpoint = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if checkpoint is None:
        print(f"Aborted before the first checkpoint was saved in {output}; run the command again with "
              "--overwrite to start over.", file=sys.stderr)
    else:
        print(f"Aborted; the last checkpoint, {checkpoint}, is kept, and the command run again with --resume "
              "continues from it.", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llada_cot",
                                     description="LLaDA masked-diffusion sampling, evaluation and fine-tuning.")
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    commands = parser.add_subparsers(dest="command", required=True)

    generate_parser = commands.add_parser("generate", help="answer one prompt")
    generate_parser.add_argument("--prompt", required=True, help="the problem to solve")
    generate_parser.add_argument("--json", action="store_true", help="print one JSON object with the trajectory")
    add_model_arguments(generate_parser)
    add_sampler_arguments(generate_parser)
    generate_parser.set_defaults(handler=run_generate)

    solve_parser = commands.add_parser("solve", help="measure boxed-answer accuracy over a test JSONL file")
    solve_parser.add_argument("--data", type=Path, required=True, help="test JSONL (seed, GSM8K or MATH format)")
    solve_parser.add_argument("--output", type=Path, required=True, help="results JSONL, one line per item")
    solve_parser.add_argument("--batch-size", type=int, default=8, help="prompts per batch")
    solve_parser.add_argument("--limit", type=int, default=None, help="solve only the first N items (0 or unset: all)")
    solve_parser.add_argument("--resume", action="store_true", help="keep the results already in --output and go on")
    solve_parser.add_argument("--overwrite", action="store_true", help="replace the results already in --output")
    add_model_arguments(solve_parser)
    add_sampler_arguments(solve_parser)
    solve_parser.set_defaults(handler=run_solve)

    train_parser = commands.add_parser("train", help="fine-tune a LoRA adapter on a training JSONL file")
    add_train_arguments(train_parser)
    train_parser.set_defaults(handler=run_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (ValueError, ModelLoadError, DataFileError) as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:
        # `solve` and `train` report what they saved themselves; this covers `generate` and model loading.
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
