"""Write the bundled train and test splits of synthetic arithmetic problems.

    python -m scripts.make_datasets --output datasets

train.jsonl has the training format (prompt, rationales, boxed answer) and
test.jsonl the test format (prompt, plain answer); no prompt is in both. The
bundled model's first training stage saw problems with operands up to 20; the
prompts of that stage's stream are kept out of the test split as well.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

from llada_cot.synthetic import ProblemConfig, iter_problems, make_splits

logger = logging.getLogger(__name__)

# Size of the test split the first training stage kept out of its stream.
STAGE_ONE_TEST_SIZE = 500


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def stage_one_prompts(n_records: int, seed: int, max_operand: int, n_test: int) -> frozenset[str]:
    """Return the prompts of the first `n_records` problems of the first training stage's stream.

    That stream excluded its own test split, drawn as `make_splits` draws it, so
    the same records are regenerated here.
    """
    config = ProblemConfig(max_operand=max_operand)
    _, old_test = make_splits(0, n_test, seed, config)
    old_test_prompts = frozenset(record["prompt"] for record in old_test)
    stream = iter_problems(seed, config, exclude=old_test_prompts)
    return frozenset(record["prompt"] for record in itertools.islice(stream, n_records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("datasets"), help="folder for train.jsonl and test.jsonl")
    parser.add_argument("--train", type=int, default=10000, help="number of training records")
    parser.add_argument("--test", type=int, default=499, help="number of test records")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--stage-one-records", type=int, default=200000,
                        help="problems of the first training stage to keep out of the test split (0: none)")
    parser.add_argument("--stage-one-max-operand", type=int, default=20,
                        help="largest + and - operand of the first training stage")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    seen = frozenset()
    if args.stage_one_records:
        seen = stage_one_prompts(args.stage_one_records, args.seed, args.stage_one_max_operand, STAGE_ONE_TEST_SIZE)
    train, test = make_splits(args.train, args.test, args.seed, exclude_from_test=seen)
    args.output.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.output / "train.jsonl", train)
    # The answer field of a test line is the bare value inside \boxed{}.
    write_jsonl(args.output / "test.jsonl",
                [{"prompt": r["prompt"], "answer": r["answer"][len("\\boxed{"):-1]} for r in test])
    logger.info("wrote %d train and %d test records to %s", len(train), len(test), args.output)


if __name__ == "__main__":
    main()
