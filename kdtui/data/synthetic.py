"""Seeded GSM8K-format word problems: the offline default for the demo and tests.

Each problem takes one to three arithmetic steps; its solution is written the way
GSM8K writes them (``<<a*b=c>>`` calculator annotations, final ``#### N`` line), so
the same loaders, prompts and answer parsing serve both.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

NAMES = ["Janet", "Omar", "Priya", "Liam", "Mei", "Carlos", "Ava", "Kwame", "Sofia", "Noah"]
ITEMS = [("apples", 2), ("pencils", 1), ("cupcakes", 3), ("stickers", 1), ("books", 12), ("marbles", 1)]


@dataclass(frozen=True)
class SyntheticProblem:
    """One generated problem in GSM8K's fields."""

    question: str
    answer: str


def _one_step(rng: random.Random) -> SyntheticProblem:
    name = rng.choice(NAMES)
    item, _ = rng.choice(ITEMS)
    a, b = rng.randint(3, 40), rng.randint(2, 9)
    total = a * b
    return SyntheticProblem(
        f"{name} buys {b} boxes of {item}. Each box holds {a} {item}. How many {item} does {name} have?",
        f"{name} has {b} * {a} = <<{b}*{a}={total}>>{total} {item}.\n#### {total}",
    )


def _two_step(rng: random.Random) -> SyntheticProblem:
    name = rng.choice(NAMES)
    item, price = rng.choice(ITEMS)
    have, eaten = rng.randint(20, 60), rng.randint(2, 15)
    left = have - eaten
    income = left * price
    return SyntheticProblem(
        f"{name} has {have} {item} and gives away {eaten}. {name} sells the rest for ${price} each. "
        f"How many dollars does {name} make?",
        f"{name} has {have} - {eaten} = <<{have}-{eaten}={left}>>{left} {item} left.\n"
        f"{name} makes {left} * {price} = $<<{left}*{price}={income}>>{income}.\n#### {income}",
    )


def _three_step(rng: random.Random) -> SyntheticProblem:
    name = rng.choice(NAMES)
    per_day, days, spent = rng.randint(3, 12), rng.randint(2, 7), rng.randint(1, 10)
    earned = per_day * days
    left = earned - spent
    split = rng.choice([1, 2, 4])
    left -= left % split
    spent = earned - left
    share = left // split
    return SyntheticProblem(
        f"{name} earns ${per_day} a day for {days} days, spends ${spent} on lunch, and shares the rest "
        f"equally among {split} {'friend' if split == 1 else 'friends'}. How many dollars does each get?",
        f"{name} earns {per_day} * {days} = <<{per_day}*{days}={earned}>>{earned} dollars.\n"
        f"After lunch {earned} - {spent} = <<{earned}-{spent}={left}>>{left} dollars remain.\n"
        f"Each gets {left} / {split} = <<{left}/{split}={share}>>{share} dollars.\n#### {share}",
    )


_TEMPLATES: list[Callable[[random.Random], SyntheticProblem]] = [_one_step, _two_step, _three_step]


def problem(index: int, seed: int = 0, steps: int | None = None) -> SyntheticProblem:
    """Problem ``index`` of the set for ``seed``, made on demand: any slice costs only its own length.

    ``steps`` (1-3) keeps to problems of that many steps (the demo's one-step slice); by default the
    three kinds take turns.
    """
    if steps is None:
        rng = random.Random(f"kdtui-synthetic/{seed}/{index}")  # str seeds are stable across processes
        return _TEMPLATES[index % len(_TEMPLATES)](rng)
    rng = random.Random(f"kdtui-synthetic/{seed}/{steps}-step/{index}")
    return _TEMPLATES[steps - 1](rng)


def generate(n: int, seed: int = 0) -> list[SyntheticProblem]:
    """The first ``n`` problems; the same ``seed`` always gives the same problems."""
    return [problem(i, seed) for i in range(n)]
