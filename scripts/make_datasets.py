"""Write the bundled train and test splits of synthetic arithmetic problems.

    python -m scripts.make_datasets --output datasets

train.jsonl has the training format (prompt, rationales, boxed answer) and
test.jsonl the test format (prompt, plain answer); no prompt is in both.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from llada_cot.synthetic import make_splits

logger = logging.getLogger(__name__)


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("datasets"), help="folder for train.jsonl and test.jsonl")
    parser.add_argument("--train", type=int, default=10000, help="number of training records")
    parser.add_argument("--test", type=int, default=500, help="number of test records")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    train, test = make_splits(args.train, args.test, args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.output / "train.jsonl", train)
    # The answer field of a test line is the bare value inside \boxed{}.
    write_jsonl(args.output / "test.jsonl",
                [{"prompt": r["prompt"], "answer": r["answer"][len("\\boxed{"):-1]} for r in test])
    logger.info("wrote %d train and %d test records to %s", len(train), len(test), args.output)


if __name__ == "__main__":
    main()
