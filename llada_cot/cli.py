"""Command-line entry points: ``python -m llada_cot generate | solve``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from llada_cot.data import DataFileError, read_test_file
from llada_cot.evaluation import evaluate_file, solve
from llada_cot.adapters import load_with_adapter
from llada_cot.loading import LoadedModel, ModelLoadError, default_reference, load_model
from llada_cot.sampling import REMASKING_RULES, SamplerConfig

logger = logging.getLogger("llada_cot")

SAMPLER_HELP = {
    "gen_length": "number of positions to generate (tokens)",
    "steps": "denoising steps in total, split over the blocks",
    "block_length": "positions per semi-autoregressive block; equal to gen_length for one block",
    "temperature": "0 for greedy decoding; above 0 samples with Gumbel noise",
    "cfg_scale": "classifier-free guidance scale; 0 turns it off (each step then costs one forward pass, not two)",
    "remasking": f"which predictions to commit first: {', '.join(REMASKING_RULES)}",
    "seed": "random seed for sampling and random remasking",
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
            group.add_argument(flag, type=kind, default=None, help=SAMPLER_HELP.get(spec.name))


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
    test_file = read_test_file(args.data)
    logger.info("%s: %d items in %s format", args.data, len(test_file.items), test_file.format)
    for warning in test_file.warnings:
        logger.warning(warning)
    loaded = load_for_args(args)
    config = sampler_config(args, loaded.sampler_defaults)
    for note in config.notes:
        logger.warning(note)
    total = min(len(test_file.items), args.limit) if args.limit else len(test_file.items)
    with tqdm(total=total, desc="solving", unit="item") as bar:
        def advance(row: dict, done: int, total_items: int) -> None:
            bar.n = done
            bar.refresh()

        summary = evaluate_file(loaded, test_file, config, args.output, batch_size=args.batch_size,
                                limit=args.limit, resume=args.resume, on_item=advance)
    summary["sampler"] = dataclasses.asdict(config)
    summary["model"] = loaded.reference
    print(json.dumps(summary, ensure_ascii=False))
    return 0


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
    solve_parser.add_argument("--limit", type=int, default=None, help="solve only the first N items")
    solve_parser.add_argument("--resume", action="store_true", help="keep the results already in --output and go on")
    add_model_arguments(solve_parser)
    add_sampler_arguments(solve_parser)
    solve_parser.set_defaults(handler=run_solve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (ValueError, ModelLoadError, DataFileError) as error:
        logger.error("%s", error)
        return 2
