"""Cents problems: the answer is the amount times the unit's cents, and the test amounts are held out."""

import json
import random
import re
from pathlib import Path

import pytest

from llada_cot.synthetic import (
    CENTS_TEMPLATES,
    COIN_UNITS,
    DEMO_CENTS_HELD_OUT,
    CentsConfig,
    cents_problem,
    make_splits,
)
from scripts.make_demo_datasets import KINDS

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
PROMPT = re.compile(r"^\w+ \w+ (\d+) (\w+)\. How many cents ")
LINE = re.compile(r"^(\d+) × (\d+) = (\d+)$")


def amount_and_unit(prompt: str) -> tuple[int, str]:
    match = PROMPT.match(prompt)
    assert match, prompt
    return int(match[1]), match[2]


def test_cents_answer_is_amount_times_unit():
    cents_per_unit = dict(COIN_UNITS)
    rng = random.Random(0)
    for _ in range(1000):
        record = cents_problem(rng)
        amount, unit = amount_and_unit(record["prompt"])
        (line,) = record["rationales"]
        a, factor, total = map(int, LINE.match(line).groups())
        assert (a, factor, total) == (amount, cents_per_unit[unit], amount * cents_per_unit[unit])
        assert record["answer"] == f"\\boxed{{{total}}}"


def test_cents_uses_every_unit_template_and_amount():
    rng = random.Random(1)
    records = [cents_problem(rng) for _ in range(3000)]
    units = {amount_and_unit(record["prompt"])[1] for record in records}
    assert units == {unit for unit, _ in COIN_UNITS}
    questions = {record["prompt"].split(". ", 1)[1] for record in records}
    assert questions == {question.format(p=pronoun) for _, question in CENTS_TEMPLATES for pronoun in ("he", "she")}
    amounts = {amount_and_unit(record["prompt"])[0] for record in records}
    assert amounts == set(CentsConfig().amounts)


def test_split_amounts_is_a_partition():
    config = CentsConfig()
    train, test = config.split_amounts(DEMO_CENTS_HELD_OUT, seed=0)
    assert len(test.amounts) == DEMO_CENTS_HELD_OUT
    assert not set(train.amounts) & set(test.amounts)
    assert set(train.amounts) | set(test.amounts) == set(config.amounts)
    # The same seed holds out the same amounts; another seed changes them.
    assert config.split_amounts(DEMO_CENTS_HELD_OUT, seed=0) == (train, test)
    assert config.split_amounts(DEMO_CENTS_HELD_OUT, seed=1)[1] != test


def test_split_amounts_rejects_too_many():
    with pytest.raises(ValueError):
        CentsConfig(amounts=(2, 3)).split_amounts(3, seed=0)


def test_demo_files_match_generator():
    generate, config, test_config = KINDS["cents"]
    train, test = make_splits(2000, 100, 4321, config, generate=generate, test_config=test_config)
    lines = (DATASETS / "demo_train.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == train
    test_lines = (DATASETS / "demo_test.jsonl").read_text(encoding="utf-8").splitlines()
    test_records = [json.loads(line) for line in test_lines]
    assert [record["prompt"] for record in test_records] == [record["prompt"] for record in test]
    assert [record["answer"] for record in test_records] == [record["answer"][len("\\boxed{"):-1] for record in test]
    # No test amount occurs in training, so a right answer cannot be recalled from a training problem.
    train_amounts = {amount_and_unit(record["prompt"])[0] for record in train}
    test_amounts = {amount_and_unit(record["prompt"])[0] for record in test_records}
    assert test_amounts <= set(test_config.amounts)
    assert not train_amounts & test_amounts
