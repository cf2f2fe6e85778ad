"""Several-people problems: the question's person, item and count come straight from the prompt."""

from __future__ import annotations

import random
import re

from llada_cot.synthetic import PeopleConfig, people_problem

FACT = re.compile(r"(\w+) has (\d+) (\w+)\.")
QUESTION = re.compile(r"How many (\w+) does (\w+) have\?$")


def test_people_answer_is_asked_count():
    rng = random.Random(0)
    for _ in range(1000):
        record = people_problem(rng)
        facts = FACT.findall(record["prompt"])
        item, name = QUESTION.search(record["prompt"]).groups()
        matches = [(count, things) for person, count, things in facts if person == name]
        assert len(matches) == 1  # every person appears once
        count, things = matches[0]
        assert things == item
        assert record["rationales"] == [f"{name} has {count} {item}."]
        assert record["answer"] == f"\\boxed{{{count}}}"


def test_people_count_within_config():
    config = PeopleConfig()
    rng = random.Random(1)
    sizes = set()
    for _ in range(500):
        facts = FACT.findall(people_problem(rng, config)["prompt"])
        sizes.add(len(facts))
        assert all(2 <= int(count) <= config.max_count for _, count, _ in facts)
    assert sizes == set(range(config.min_people, config.max_people + 1))


def test_people_asked_position_varies():
    rng = random.Random(2)
    positions = []
    for _ in range(1000):
        record = people_problem(rng)
        names = [person for person, _, _ in FACT.findall(record["prompt"])]
        positions.append(names.index(QUESTION.search(record["prompt"]).group(2)))
    # With three or four people, the first one is asked about in 29% of the problems on average.
    assert positions.count(0) < 400
    assert len(set(positions)) == PeopleConfig().max_people

