import random
import re

from llada_cot.synthetic import ProblemConfig, generate_problem, make_splits

RATIONALE = re.compile(r"^(\d+) ([+\-×]) (\d+) = (\d+)$")


def test_splits_are_disjoint_and_seeded():
    train, test = make_splits(300, 100, seed=5)
    again_train, again_test = make_splits(300, 100, seed=5)
    assert train == again_train
    assert test == again_test
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert len({r["prompt"] for r in test}) == 100


def test_rationales_are_correct_chained_arithmetic():
    rng = random.Random(0)
    config = ProblemConfig()
    for _ in range(500):
        record = generate_problem(rng, config)
        assert config.min_steps <= len(record["rationales"]) <= config.max_steps
        previous = None
        for line in record["rationales"]:
            a, op, b, result = RATIONALE.match(line).groups()
            a, b, result = int(a), int(b), int(result)
            assert result == {"+": a + b, "-": a - b, "×": a * b}[op]
            assert 0 <= result <= config.max_value
            if previous is not None:
                assert a == previous  # each step starts from the last result
            previous = result
        assert record["answer"] == f"\\boxed{{{previous}}}"


def test_problem_numbers_appear_in_prompt():
    rng = random.Random(1)
    for _ in range(200):
        record = generate_problem(rng)
        first = RATIONALE.match(record["rationales"][0]).group(1)
        assert first in record["prompt"]


def test_direct_first_number_range():
    rng = random.Random(4)
    config = ProblemConfig(direct_fraction=1.0, max_direct_first=100)
    firsts = []
    for _ in range(2000):
        record = generate_problem(rng, config)
        first = int(record["prompt"].split()[2])
        firsts.append(first)
        a, op, b, _, result = record["rationales"][0].split()
        assert int(a) == first
        assert 0 <= int(result) <= config.max_value
    assert max(firsts) > config.max_operand  # two-digit first numbers appear
    assert min(firsts) >= 2
    assert max(firsts) <= 100


def test_direct_first_number_default():
    rng = random.Random(5)
    config = ProblemConfig(direct_fraction=1.0)
    for _ in range(500):
        first = int(generate_problem(rng, config)["prompt"].split()[2])
        assert 2 <= first <= config.max_operand
