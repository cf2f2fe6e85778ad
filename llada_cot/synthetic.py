"""Seeded arithmetic word problems with step-by-step rationales.

Each problem follows one quantity through one to three operations (+, -, ×).
Every operation is one rationale line such as ``12 + 5 = 17`` and the response
ends with ``\\boxed{17}``. Numbers stay small (every intermediate value lies in
``[0, max_value]``), which keeps the number of distinct arithmetic facts that a
model of a few million parameters has to learn small.

`sharing_problem` makes a problem type that is absent from the bundled model's
pre-training: equal sharing (division, ``12 ÷ 3 = 4``), alone or after one
known + or - step; a LoRA adapter learns it slowly (see docs/benchmarks.md).
`people_problem` makes another: several people, and a question about one of them.
`cents_problem` makes a third: amounts in dimes or dollars converted to cents
(``23 × 10 = 230``), with amounts up to 99 where the pre-training has one digit.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PEOPLE = (
    ("Tom", "he"), ("Mia", "she"), ("Sam", "he"), ("Ana", "she"), ("Ben", "he"),
    ("Lily", "she"), ("Max", "he"), ("Zoe", "she"), ("Leo", "he"), ("Emma", "she"),
)
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "coins", "cards")

# Sentence templates per operation. `{p}` is the pronoun, capitalised where a
# sentence starts with it.
ADD_TEMPLATES = (
    "{P} buys {b} more.",
    "{P} finds {b} more.",
    "A friend gives {o} {b} more.",
)
SUB_TEMPLATES = (
    "{P} gives away {b}.",
    "{P} loses {b}.",
    "{P} sells {b}.",
)
MUL_TEMPLATES = (
    "Then {p} gets {b} times as many.",
)
OBJECT_PRONOUNS = {"he": "him", "she": "her"}
SYMBOLS = {"add": "+", "sub": "-", "mul": "×"}


@dataclass(frozen=True)
class ProblemConfig:
    """Ranges of the generated problems."""

    min_steps: int = 1
    max_steps: int = 3
    max_operand: int = 9  # largest operand of + and - (one digit: each prompt number is one token)
    max_factor: int = 5  # largest factor of ×
    max_value: int = 100  # largest value any step may produce
    direct_fraction: float = 0.15  # share of bare "What is a + b?" problems
    # Largest first number of the bare problems; None keeps it at max_operand. Raising it to max_value
    # drills the sums and products of two-digit values that later steps of word problems reach.
    max_direct_first: int | None = None


def _apply(op: str, x: int, b: int) -> int:
    if op == "add":
        return x + b
    if op == "sub":
        return x - b
    return x * b


def _pick_operation(rng: random.Random, x: int, config: ProblemConfig) -> tuple[str, int]:
    """Pick an operation and operand that keep the value within range."""
    choices = []
    if x + 1 <= config.max_value:
        choices.append("add")
    if x >= 1:
        choices.append("sub")
    if 2 * x <= config.max_value and x >= 1:
        choices.append("mul")
    op = rng.choice(choices)
    if op == "add":
        b = rng.randint(1, min(config.max_operand, config.max_value - x))
    elif op == "sub":
        b = rng.randint(1, min(config.max_operand, x))
    else:
        b = rng.randint(2, min(config.max_factor, config.max_value // x))
    return op, b


def _word_problem(rng: random.Random, config: ProblemConfig) -> dict:
    name, pronoun = rng.choice(PEOPLE)
    item = rng.choice(ITEMS)
    n_steps = rng.randint(config.min_steps, config.max_steps)
    x = rng.randint(2, config.max_operand)
    sentences = [f"{name} has {x} {item}."]
    rationales = []
    for _ in range(n_steps):
        op, b = _pick_operation(rng, x, config)
        if op == "add":
            template = rng.choice(ADD_TEMPLATES)
        elif op == "sub":
            template = rng.choice(SUB_TEMPLATES)
        else:
            template = rng.choice(MUL_TEMPLATES)
        sentences.append(template.format(
            P=pronoun.capitalize(), p=pronoun, o=OBJECT_PRONOUNS[pronoun], b=b))
        y = _apply(op, x, b)
        rationales.append(f"{x} {SYMBOLS[op]} {b} = {y}")
        x = y
    sentences.append(f"How many {item} does {name} have now?")
    return {"prompt": " ".join(sentences), "rationales": rationales, "answer": f"\\boxed{{{x}}}"}


def _direct_problem(rng: random.Random, config: ProblemConfig) -> dict:
    a = rng.randint(2, config.max_direct_first or config.max_operand)
    op, b = _pick_operation(rng, a, config)
    y = _apply(op, a, b)
    return {
        "prompt": f"What is {a} {SYMBOLS[op]} {b}?",
        "rationales": [f"{a} {SYMBOLS[op]} {b} = {y}"],
        "answer": f"\\boxed{{{y}}}",
    }


def generate_problem(rng: random.Random, config: ProblemConfig = ProblemConfig()) -> dict:
    """Return one training record: ``{"prompt", "rationales", "answer"}``."""
    if rng.random() < config.direct_fraction:
        return _direct_problem(rng, config)
    return _word_problem(rng, config)


def iter_problems(seed: int, config=ProblemConfig(), exclude: frozenset[str] = frozenset(),
                  generate: Callable[[random.Random, object], dict] = generate_problem) -> Iterator[dict]:
    """Yield an endless seeded stream of `generate(rng, config)` records whose prompts are not in `exclude`."""
    rng = random.Random(seed)
    while True:
        record = generate(rng, config)
        if record["prompt"] not in exclude:
            yield record


def make_splits(n_train: int, n_test: int, seed: int, config=ProblemConfig(),
                generate: Callable[[random.Random, object], dict] = generate_problem,
                exclude_from_test: frozenset[str] = frozenset(), test_config=None) -> tuple[list[dict], list[dict]]:
    """Return train and test records with disjoint prompts.

    The test split is drawn first from its own seeded stream, so regenerating
    the training split with another size never changes the test split.
    `generate` and `config` choose the problem type (`sharing_problem` with a
    `SharingConfig` for the sharing problems). `test_config`, when given, draws
    the test split from other ranges than the training split. Prompts in
    `exclude_from_test`, such as those a model was already trained on, never
    enter the test split.
    """
    test: list[dict] = []
    seen: set[str] = set(exclude_from_test)
    for record in iter_problems(seed + 1, config if test_config is None else test_config, generate=generate):
        if record["prompt"] in seen:
            continue
        seen.add(record["prompt"])
        test.append(record)
        if len(test) == n_test:
            break
    stream = iter_problems(seed, config, exclude=frozenset(seen), generate=generate)
    train = list(itertools.islice(stream, n_train))
    return train, test


# --- Sharing (division) problems --------------------------------------------

# (sentence that shares the quantity, question) pairs; `{d}` is the divisor.
SHARE_TEMPLATES = (
    ("{P} shares them equally among {d} friends.", "How many {item} does each friend get?"),
    ("{P} puts them into {d} equal groups.", "How many {item} are in each group?"),
    ("{P} packs them equally into {d} boxes.", "How many {item} go in each box?"),
)
DIVISION_SYMBOL = "÷"


@dataclass(frozen=True)
class SharingConfig:
    """Ranges of the sharing problems; every division is exact."""

    max_divisor: int = 5
    max_quotient: int = 20
    max_value: int = 100  # largest quantity before the sharing
    max_operand: int = 20  # largest operand of the + or - step before the sharing
    two_step_fraction: float = 0.5  # share of problems with a + or - step first
    direct_fraction: float = 0.2  # share of bare "What is 12 ÷ 3?" problems


# The sharing demonstration's ranges: one division with a divisor of 2 to 5 and a quotient of 2 to 9,
# 32 division facts in all. The bundled model computes + and - too poorly for a step before the sharing,
# so the demonstration teaches the division alone.
DEMO_SHARING = SharingConfig(max_quotient=9, two_step_fraction=0.0)


def sharing_problem(rng: random.Random, config: SharingConfig = SharingConfig()) -> dict:
    """Return one sharing record: ``{"prompt", "rationales", "answer"}``.

    A quantity n = d × q is shared into d equal parts, so the answer is q. In
    two-step problems a known + or - step first reaches n.
    """
    divisor = rng.randint(2, config.max_divisor)
    quotient = rng.randint(2, min(config.max_quotient, config.max_value // divisor))
    total = divisor * quotient
    division = f"{total} {DIVISION_SYMBOL} {divisor} = {quotient}"
    answer = f"\\boxed{{{quotient}}}"
    if rng.random() < config.direct_fraction:
        return {"prompt": f"What is {total} {DIVISION_SYMBOL} {divisor}?", "rationales": [division], "answer": answer}

    name, pronoun = rng.choice(PEOPLE)
    item = rng.choice(ITEMS)
    sentences, rationales = [], []
    if rng.random() < config.two_step_fraction:
        # Start from x and reach `total` with one + or - step, keeping x within [2, max_value].
        can_add = total - 1 >= 2
        if can_add and (rng.random() < 0.5 or total + 1 > config.max_value):
            b = rng.randint(1, min(config.max_operand, total - 2))
            x, template, symbol = total - b, rng.choice(ADD_TEMPLATES), SYMBOLS["add"]
        else:
            b = rng.randint(1, min(config.max_operand, config.max_value - total))
            x, template, symbol = total + b, rng.choice(SUB_TEMPLATES), SYMBOLS["sub"]
        sentences += [f"{name} has {x} {item}.",
                      template.format(P=pronoun.capitalize(), p=pronoun, o=OBJECT_PRONOUNS[pronoun], b=b)]
        rationales.append(f"{x} {symbol} {b} = {total}")
    else:
        sentences.append(f"{name} has {total} {item}.")
    share, question = rng.choice(SHARE_TEMPLATES)
    sentences += [share.format(P=pronoun.capitalize(), d=divisor), question.format(item=item)]
    rationales.append(division)
    return {"prompt": " ".join(sentences), "rationales": rationales, "answer": answer}


# --- Several-people problems --------------------------------------------------


@dataclass(frozen=True)
class PeopleConfig:
    """Ranges of the several-people problems."""

    min_people: int = 3
    max_people: int = 4
    max_count: int = 9  # largest count a person has (one digit, the range the bundled model copies)


def people_problem(rng: random.Random, config: PeopleConfig = PeopleConfig()) -> dict:
    """Return one record in which several people each have some items, with a question about one of them.

    The answer is a number read off the prompt, with no arithmetic, so the
    skill is finding the sentence that the question points to. The bundled
    model was pre-trained on problems about one person only.
    """
    n_people = rng.randint(config.min_people, config.max_people)
    people = rng.sample(PEOPLE, n_people)
    facts = [(name, rng.randint(2, config.max_count), rng.choice(ITEMS)) for name, _ in people]
    asked_name, count, item = rng.choice(facts)
    sentences = [f"{name} has {n} {things}." for name, n, things in facts]
    sentences.append(f"How many {item} does {asked_name} have?")
    return {"prompt": " ".join(sentences), "rationales": [f"{asked_name} has {count} {item}."],
            "answer": f"\\boxed{{{count}}}"}



# --- Cents problems -------------------------------------------------------------

# (unit, cents per unit)
COIN_UNITS = (("dimes", 10), ("dollars", 100))
# (statement, question) pairs; `{p}` is the pronoun.
CENTS_TEMPLATES = (
    ("{name} has {n} {unit}.", "How many cents is that?"),
    ("{name} saves {n} {unit}.", "How many cents does {p} save?"),
    ("{name} spends {n} {unit}.", "How many cents does {p} spend?"),
)


@dataclass(frozen=True)
class CentsConfig:
    """Amounts of the cents problems."""

    amounts: tuple[int, ...] = tuple(range(2, 100))

    def split_amounts(self, n_held_out: int, seed: int) -> tuple[CentsConfig, CentsConfig]:
        """Return (training, test) configurations whose amounts do not overlap.

        `n_held_out` amounts drawn with `seed` go to the test configuration
        only, so no test problem has an amount that the training split contains.
        """
        if not 0 < n_held_out < len(self.amounts):
            raise ValueError(f"n_held_out must leave amounts on both sides: between 1 and "
                             f"{len(self.amounts) - 1} for {len(self.amounts)} amounts, got {n_held_out}.")
        held_out = set(random.Random(seed).sample(self.amounts, n_held_out))
        training_amounts = tuple(amount for amount in self.amounts if amount not in held_out)
        return CentsConfig(amounts=training_amounts), CentsConfig(amounts=tuple(sorted(held_out)))


# The fine-tuning demonstration holds out this many of the 98 amounts for the test split.
DEMO_CENTS_HELD_OUT = 20


def cents_problem(rng: random.Random, config: CentsConfig = CentsConfig()) -> dict:
    """Return one record that converts an amount of dimes or dollars to cents.

    The bundled tokenizer writes numbers digit by digit, so the result copies
    the amount's digits and appends one or two zeros, chosen by the unit. The
    bundled model was pre-trained on one-digit prompt numbers and never saw
    these units.
    """
    name, pronoun = rng.choice(PEOPLE)
    unit, cents = rng.choice(COIN_UNITS)
    amount = rng.choice(config.amounts)
    statement, question = rng.choice(CENTS_TEMPLATES)
    total = amount * cents
    return {
        "prompt": f"{statement.format(name=name, n=amount, unit=unit)} {question.format(p=pronoun)}",
        "rationales": [f"{amount} {SYMBOLS['mul']} {cents} = {total}"],
        "answer": f"\\boxed{{{total}}}",
    }
