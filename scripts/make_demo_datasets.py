"""Write the fine-tuning demonstration splits.

    python -m scripts.make_demo_datasets --output datasets
    python -m scripts.make_demo_datasets --kind people --output workspace/people

The bundled tiny model is pre-trained on +, - and × problems about one person
with one-digit prompt numbers, so it cannot solve these. The default kind,
cents problems, converts dimes and dollars to cents. The test split's amounts
never occur in the training split. Sharing problems need division.
Several-people problems ask about one of three or four people. demo_train.jsonl
has the training format (prompt, rationales, boxed answer) and demo_test.jsonl
the test format (prompt, plain answer), and no prompt is in both.
docs/benchmarks.md records the accuracy before and after fine-tuning on each kind.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from llada_cot.synthetic import (
    DEMO_CENTS_HELD_OUT,
    DEMO_SHARING,
    CentsConfig,
    PeopleConfig,
    cents_problem,
    make_splits,
    people_problem,
    sharing_problem,
)
from scripts.make_datasets import write_jsonl

logger = logging.getLogger(__name__)

# Problem kinds: (generator, training configuration, test configuration or None for the same).
KINDS = {
    "cents": (cents_problem, *CentsConfig().split_amounts(DEMO_CENTS_HELD_OUT, seed=0)),
    "people": (people_problem, PeopleConfig(), None),
    "sharing": (sharing_problem, DEMO_SHARING, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("datasets"),
                        help="folder for demo_train.jsonl and demo_test.jsonl")
    parser.add_argument("--train", type=int, default=2000, help="number of training records")
    parser.add_argument("--test", type=int, default=100, help="number of test records")
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--kind", choices=sorted(KINDS), default="cents",
                        help="problem kind: cents (dimes and dollars to cents), sharing (division) "
                             "or people (a question about one of several people)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    generate, config, test_config = KINDS[args.kind]
    train, test = make_splits(args.train, args.test, args.seed, config, generate=generate, test_config=test_config)
    args.output.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.output / "demo_train.jsonl", train)
    # The answer field of a test line is the bare value inside \boxed{}.
    write_jsonl(args.output / "demo_test.jsonl",
                [{"prompt": r["prompt"], "answer": r["answer"][len("\\boxed{"):-1]} for r in test])
    logger.info("wrote %d train and %d test records to %s", len(train), len(test), args.output)


if __name__ == "__main__":
    main()
