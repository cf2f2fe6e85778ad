import random
import re

from llada_cot.synthetic import DEMO_SHARING, DIVISION_SYMBOL, SharingConfig, sharing_problem

STEP = re.compile(r"^(\d+) ([+\-÷]) (\d+) = (\d+)$")


def check_rationales(record: dict, config: SharingConfig) -> None:
    value = None
    for line in record["rationales"]:
        match = STEP.match(line)
        assert match, line
        a, op, b, result = int(match[1]), match[2], int(match[3]), int(match[4])
        if value is not None:
            assert a == value  # each step continues from the previous result
        if op == "+":
            assert a + b == result
        elif op == "-":
            assert a - b == result
        else:
            assert 2 <= b <= config.max_divisor
            assert a == b * result  # exact division
        assert 0 <= a <= config.max_value
        value = result
    assert record["rationales"][-1].split(" ")[1] == DIVISION_SYMBOL
    assert record["answer"] == f"\\boxed{{{value}}}"


def test_sharing_rationales_are_correct():
    config = SharingConfig()
    rng = random.Random(0)
    for _ in range(2000):
        check_rationales(sharing_problem(rng, config), config)


def test_sharing_numbers_appear_in_prompt():
    rng = random.Random(1)
    for _ in range(500):
        record = sharing_problem(rng)
        numbers = re.findall(r"\d+", record["prompt"])
        for line in record["rationales"]:
            operand = line.split(" ")[2]
            assert operand in numbers, (record["prompt"], line)


def test_sharing_mix_has_every_kind():
    rng = random.Random(2)
    records = [sharing_problem(rng) for _ in range(1000)]
    direct = sum(record["prompt"].startswith("What is") for record in records)
    two_step = sum(len(record["rationales"]) == 2 for record in records)
    assert 100 < direct < 300
    assert 300 < two_step < 500


def test_demo_sharing_ranges():
    rng = random.Random(3)
    for _ in range(1000):
        record = sharing_problem(rng, DEMO_SHARING)
        check_rationales(record, DEMO_SHARING)
        assert len(record["rationales"]) == 1
        quotient = int(record["rationales"][0].split(" = ")[1])
        assert 2 <= quotient <= DEMO_SHARING.max_quotient

