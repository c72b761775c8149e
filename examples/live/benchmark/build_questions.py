"""Build the skill-slices demo benchmark and write ``questions.jsonl`` next to this file.

The questions were written for this project. Two kinds of subject:

* computed subjects (arithmetic, percentages, fractions, algebra, geometry, unit conversion,
  probability, number theory, calendar dates, Python code, string manipulation): each question
  is generated from a seeded ``random.Random`` and its gold answer is computed here in Python
  (probabilities by enumerating outcomes, dates with ``datetime``, code output by running the
  code), never typed in;
* knowledge subjects (science, geography, history, language, reasoning, everyday knowledge...):
  hand-written short questions, each with one correct option and three wrong ones.

Every row is ``{"instance_id", "question", "options", "answer", "subject", "difficulty"}``;
``answer`` is the letter of the correct option, and correct positions are balanced over A-D.
The output is deterministic: ``python examples/live/benchmark/build_questions.py`` always writes the
same bytes.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import io
import itertools
import json
import math
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from random import Random

OUT_PATH = Path(__file__).with_name("questions.jsonl")
LETTERS = "ABCD"
KEYS = ("instance_id", "question", "options", "answer", "subject", "difficulty")
DIFFICULTIES = ("easy", "medium", "hard")

# An item is (question, correct option, three wrong options).
Item = tuple[str, str, list[str]]
Generator = Callable[[Random, int], Item]


# --------------------------------------------------------------------------------------------
# Formatting and distractor helpers
# --------------------------------------------------------------------------------------------


def fmt_num(x: int | Fraction) -> str:
    """An integer, or a terminating decimal with no trailing zeros (ValueError otherwise)."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    for k in range(1, 7):
        scaled = x * 10**k
        if scaled.denominator == 1:
            n = scaled.numerator
            sign = "-" if n < 0 else ""
            digits = str(abs(n)).rjust(k + 1, "0")
            return f"{sign}{digits[:-k]}.{digits[-k:]}"
    raise ValueError(f"{x} is not a short terminating decimal")


def fmt_frac(x: int | Fraction) -> str:
    """A fraction in lowest terms, e.g. ``3/4``; whole numbers print as integers."""
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def fmt_money(x: int | Fraction) -> str:
    """Dollars: ``$30`` for whole amounts, ``$30.50`` otherwise."""
    cents = Fraction(x) * 100
    if cents.denominator != 1:
        raise ValueError(f"{x} is not a whole number of cents")
    c = cents.numerator
    if c % 100 == 0:
        return f"${c // 100}"
    return f"${c // 100}.{c % 100:02d}"


def pick_distractors(
    rng: Random, correct: str, candidates: list[str], pool_size: int = 5
) -> list[str]:
    """Three distinct wrong options, drawn from the ``pool_size`` most plausible candidates."""
    pool: list[str] = []
    for c in candidates:
        if c and c != correct and c not in pool:
            pool.append(c)
    if len(pool) < 3:
        raise ValueError(f"not enough distractors for {correct!r}: {pool}")
    return rng.sample(pool[:pool_size], 3)


def numeric_item(
    rng: Random,
    question: str,
    answer: int | Fraction,
    candidates: list[int | Fraction],
    fmt: Callable[[int | Fraction], str] = fmt_num,
    positive: bool = True,
    pool_size: int = 5,
) -> Item:
    """Build an item whose options are numbers; wrong candidates are filtered and formatted."""
    answer = Fraction(answer)
    correct = fmt(answer)
    step = 1 if answer.denominator == 1 else Fraction(1, answer.denominator)
    fallbacks = [answer + step, answer - step, answer + 2 * step, answer * 2, answer + 3 * step]
    formatted: list[str] = []
    for c in [*candidates, *fallbacks]:
        c = Fraction(c)
        if c == answer or (positive and c <= 0):
            continue
        try:
            formatted.append(fmt(c))
        except ValueError:
            continue
    return question, correct, pick_distractors(rng, correct, formatted, pool_size)


def _seed(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Computed subjects
# --------------------------------------------------------------------------------------------


def arith_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        a, b = rng.randint(12, 68), rng.randint(11, 39)
        ans = a + b
        return numeric_item(rng, f"What is {a} + {b}?", ans, [ans + 10, ans - 10, ans + 1, ans - 1])
    if kind == 1:
        a = rng.randint(40, 99)
        b = rng.randint(11, a - 10)
        ans = a - b
        cands = [ans + 10, ans - 10, ans + 1, ans - 1, a + b]
        return numeric_item(rng, f"What is {a} - {b}?", ans, cands)
    a, b = rng.randint(2, 9), rng.randint(3, 12)
    ans = a * b
    return numeric_item(rng, f"What is {a} × {b}?", ans, [ans + a, ans - a, ans + b, a + b])


def arith_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        a, b = rng.randint(11, 29), rng.randint(11, 19)
        ans = a * b
        cands = [ans + 10, ans - 10, ans + a, ans - b, ans + 100]
        return numeric_item(rng, f"What is {a} × {b}?", ans, cands)
    if kind == 1:
        b, q = rng.randint(3, 12), rng.randint(7, 25)
        a = b * q
        return numeric_item(rng, f"What is {a} ÷ {b}?", q, [q + 1, q - 1, q + 2, q + 10, q - 2])
    a, b = rng.randint(100, 499), rng.randint(50, 299)
    c = rng.randint(20, 99)
    ans = a + b - c
    cands = [ans + 10, ans - 10, a + b + c, ans + 100, ans - 1]
    return numeric_item(rng, f"What is {a} + {b} - {c}?", ans, cands)


def arith_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        a, b = rng.randint(101, 399), rng.randint(12, 49)
        ans = a * b
        cands = [ans + a, ans - a, ans + 100, ans - 100, ans + 10]
        return numeric_item(rng, f"What is {a} × {b}?", ans, cands)
    if kind == 1:
        a, b, c = rng.randint(5, 40), rng.randint(3, 12), rng.randint(3, 12)
        ans = a + b * c
        cands = [(a + b) * c, ans + 1, ans + b, ans - c, a * b + c]
        return numeric_item(rng, f"What is {a} + {b} × {c}?", ans, cands)
    a, b, c = rng.randint(20, 60), rng.randint(3, 15), rng.randint(3, 9)
    ans = (a - b) * c
    cands = [a - b * c, a * c - b, ans + c, ans - c, ans + 10]
    return numeric_item(rng, f"What is ({a} - {b}) × {c}?", ans, cands)


def pct_easy(rng: Random, n: int) -> Item:
    p = rng.choice([10, 20, 25, 50])
    base = 20 * rng.randint(2, 20)
    ans = Fraction(p * base, 100)
    cands = [ans * 10, ans / 10, base - ans, ans * 2, ans / 2, ans + 10]
    return numeric_item(rng, f"What is {p}% of {base}?", ans, cands)


ITEMS_ON_SALE = ["jacket", "lamp", "book", "backpack", "pair of shoes", "toaster", "chair"]


def pct_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        p = rng.choice([5, 12, 15, 30, 40, 75])
        base = 10 * rng.randint(2, 30)
        ans = Fraction(p * base, 100)
        cands = [ans * 10, ans / 10, base - ans, ans * 2, ans + 5]
        return numeric_item(rng, f"What is {p}% of {base}?", ans, cands)
    if kind == 1:
        item = rng.choice(ITEMS_ON_SALE)
        price = 5 * rng.randint(4, 30)
        p = rng.choice([10, 20, 25, 30, 40, 50])
        sale = Fraction(price * (100 - p), 100)
        cands = [Fraction(price * p, 100), price - p, Fraction(price * (100 + p), 100), sale + 5]
        q = f"A {item} costs ${price} and is on sale for {p}% off. What is the sale price?"
        return numeric_item(rng, q, sale, cands, fmt=fmt_money)
    while True:
        total = rng.choice([20, 25, 40, 50, 80, 200])
        p = rng.choice([5, 10, 15, 20, 25, 30, 40, 60, 75])
        part = Fraction(total * p, 100)
        if part.denominator == 1:
            break
    cands = [p * 2, Fraction(p, 2), p + 10, 100 - p, part]
    return numeric_item(
        rng, f"What percent of {total} is {part}?", p, cands, fmt=lambda x: fmt_num(x) + "%"
    )


def pct_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        while True:
            a = rng.choice([20, 40, 50, 80, 120, 200, 250])
            p = rng.choice([10, 20, 25, 40, 50, 75])
            b = Fraction(a * (100 + p), 100)
            if b.denominator == 1:
                break
        cands = [(b - a) / b * 100, b - a, p + 5, p * 2, 100 + p]
        q = f"A price rises from ${a} to ${b}. By what percent did it increase?"
        return numeric_item(rng, q, p, cands, fmt=lambda x: fmt_num(x) + "%")
    if kind == 1:
        a = rng.choice([100, 200, 300, 400, 500])
        p = rng.choice([10, 20, 25, 50])
        final = Fraction(a * (100 + p) * (100 - p), 10000)
        cands = [a, Fraction(a * (100 + p), 100), Fraction(a * (100 - p), 100), final - 1]
        q = f"A ${a} item goes up by {p}% and then down by {p}%. What is the final price?"
        return numeric_item(rng, q, final, cands, fmt=fmt_money)
    while True:
        p = rng.choice([10, 20, 25, 50])
        orig = 20 * rng.randint(2, 15)
        sale = Fraction(orig * (100 - p), 100)
        if sale.denominator == 1:
            break
    cands = [Fraction(sale * (100 + p), 100), sale + p, orig + 10, orig - 10]
    q = f"After a {p}% discount, a coat costs ${sale}. What was the original price?"
    return numeric_item(rng, q, orig, cands, fmt=fmt_money)


def _proper_fraction(rng: Random, lo: int, hi: int, min_num: int) -> tuple[int, int]:
    """(denominator, numerator) of a proper fraction in lowest terms."""
    while True:
        b = rng.randint(lo, hi)
        a = rng.randint(min_num, b - 1)
        if math.gcd(a, b) == 1:
            return b, a


def frac_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        d = rng.randint(4, 12)
        a = rng.randint(1, d - 2)
        b = rng.randint(1, d - a - 1)
        ans = Fraction(a + b, d)
        cands = [
            Fraction(a + b, 2 * d),
            Fraction(a * b, d),
            ans + Fraction(1, d),
            ans - Fraction(1, d),
        ]
        return numeric_item(rng, f"What is {a}/{d} + {b}/{d}?", ans, cands, fmt=fmt_frac)
    if kind == 1:
        while True:
            q = rng.randint(2, 9)
            p = rng.randint(1, q - 1)
            if math.gcd(p, q) == 1:
                break
        k = rng.randint(2, 6)
        ans = Fraction(p, q)
        cands = [
            Fraction(p + 1, q),
            Fraction(p, q + 1),
            Fraction(q, p),
            Fraction(p, q - 1) if q > 2 else 2,
        ]
        return numeric_item(rng, f"Simplify {p * k}/{q * k}.", ans, cands, fmt=fmt_frac)
    b, a = _proper_fraction(rng, 2, 6, 1)
    whole = b * rng.randint(2, 9)
    ans = Fraction(a * whole, b)
    cands = [Fraction(whole, b), Fraction(whole * b, a), whole - ans, ans + a]
    return numeric_item(rng, f"What is {a}/{b} of {whole}?", ans, cands, fmt=fmt_frac)


def _two_fracs(rng: Random) -> tuple[int, int, int, int]:
    b, d = rng.sample(range(2, 10), 2)
    return rng.randint(1, b - 1), b, rng.randint(1, d - 1), d


def frac_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        a, b, c, d = _two_fracs(rng)
        ans = Fraction(a, b) + Fraction(c, d)
        m = math.lcm(b, d)
        cands = [
            Fraction(a + c, b + d),
            ans + Fraction(1, m),
            ans - Fraction(1, m),
            Fraction(a + c, m),
        ]
        return numeric_item(rng, f"What is {a}/{b} + {c}/{d}?", ans, cands, fmt=fmt_frac)
    if kind == 1:
        a, b, c, d = _two_fracs(rng)
        ans = Fraction(a, b) * Fraction(c, d)
        cands = [Fraction(a * d, b * c), Fraction(a + c, b + d), Fraction(a * c, b + d), ans * 2]
        return numeric_item(rng, f"What is {a}/{b} × {c}/{d}?", ans, cands, fmt=fmt_frac)
    b, a = _proper_fraction(rng, 3, 9, 2)
    whole = b * rng.randint(2, 12)
    ans = Fraction(a * whole, b)
    cands = [Fraction(whole, b), Fraction(whole * b, a), whole - ans, ans + a]
    return numeric_item(rng, f"What is {a}/{b} of {whole}?", ans, cands, fmt=fmt_frac)


def frac_hard(rng: Random, n: int) -> Item:
    if n % 2 == 0:
        while True:
            a, b, c, d = _two_fracs(rng)
            ans = Fraction(a, b) - Fraction(c, d)
            if ans > 0:
                break
        m = math.lcm(b, d)
        cands = [Fraction(a - c, b - d), ans + Fraction(1, m), Fraction(a + c, b * d), ans * 2]
        return numeric_item(rng, f"What is {a}/{b} - {c}/{d}?", ans, cands, fmt=fmt_frac)
    a, b, c, d = _two_fracs(rng)
    ans = Fraction(a, b) / Fraction(c, d)
    cands = [Fraction(a * c, b * d), 1 / ans, ans + 1, Fraction(a + d, b + c)]
    return numeric_item(rng, f"What is {a}/{b} ÷ {c}/{d}?", ans, cands, fmt=fmt_frac)


def alg_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        x, a = rng.randint(1, 20), rng.randint(2, 15)
        b = x + a
        return numeric_item(rng, f"Solve for x: x + {a} = {b}.", x, [b + a, x + 1, x - 1, b])
    if kind == 1:
        a, x = rng.randint(2, 9), rng.randint(2, 12)
        b = a * x
        return numeric_item(rng, f"Solve for x: {a}x = {b}.", x, [b - a, x + 1, x - 1, b])
    a = rng.randint(2, 15)
    x = rng.randint(a + 1, a + 20)
    b = x - a
    return numeric_item(rng, f"Solve for x: x - {a} = {b}.", x, [b - a, x + 1, x - 1, b])


def alg_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        a, x, b = rng.randint(2, 9), rng.randint(1, 12), rng.randint(1, 20)
        c = a * x + b
        cands = [Fraction(c + b, a), c - b, x + 1, x - 1, Fraction(c, a)]
        cands = [v for v in cands if Fraction(v).denominator == 1]
        return numeric_item(rng, f"Solve for x: {a}x + {b} = {c}.", x, cands)
    if kind == 1:
        a, b, k = rng.randint(2, 9), rng.randint(1, 15), rng.randint(2, 9)
        ans = a * k + b
        cands = [a * k, a * (k + b), a + k + b, ans + 1, ans - a]
        return numeric_item(rng, f"If y = {a}x + {b}, what is y when x = {k}?", ans, cands)
    a, x = rng.randint(2, 9), rng.randint(2, 12)
    b = rng.randint(1, a * x - 1)
    c = a * x - b
    cands = [Fraction(c - b, a), c + b, x + 1, x - 1, Fraction(c, a)]
    cands = [v for v in cands if Fraction(v).denominator == 1]
    return numeric_item(rng, f"Solve for x: {a}x - {b} = {c}.", x, cands)


def alg_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        c = rng.randint(2, 6)
        a = rng.randint(c + 1, c + 5)
        x, b = rng.randint(1, 10), rng.randint(1, 20)
        d = (a - c) * x + b
        cands = [Fraction(d + b, a - c), Fraction(d - b, a + c), x + 1, x - 1, d - b]
        cands = [v for v in cands if Fraction(v).denominator == 1]
        return numeric_item(rng, f"Solve for x: {a}x + {b} = {c}x + {d}.", x, cands)
    if kind == 1:
        a, x, b = rng.randint(2, 6), rng.randint(1, 10), rng.randint(1, 9)
        c = a * (x + b)
        cands = [x + b, x + 2 * b, x + 1, c - b, x - 1]
        return numeric_item(rng, f"Solve for x: {a}(x + {b}) = {c}.", x, cands)
    k, a = rng.randint(2, 9), rng.randint(2, 9)
    ans = k * k + a * k
    cands = [2 * k + a * k, k * k + a + k, ans + k, (k + a) ** 2, ans - 1]
    return numeric_item(rng, f"If x = {k}, what is x² + {a}x?", ans, cands)


def _unit(suffix: str) -> Callable[[int | Fraction], str]:
    return lambda x: fmt_num(x) + suffix


def geom_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        w = rng.randint(3, 15)
        h = rng.randint(2, w - 1)
        ans = w * h
        cands = [2 * (w + h), w + h, ans + w, ans - h]
        q = f"What is the area of a rectangle {w} cm long and {h} cm wide?"
        return numeric_item(rng, q, ans, cands, fmt=_unit(" cm²"))
    if kind == 1:
        s = rng.randint(3, 20)
        q = f"What is the perimeter of a square with sides of {s} cm?"
        return numeric_item(rng, q, 4 * s, [s * s, 2 * s, 3 * s, 4 * s + 4], fmt=_unit(" cm"))
    a = rng.randint(30, 90)
    b = rng.randint(20, 150 - a)
    c = 180 - a - b
    q = f"Two angles of a triangle are {a}° and {b}°. What is the third angle?"
    return numeric_item(rng, q, c, [360 - a - b, a + b, c + 10, c - 10], fmt=_unit("°"))


def geom_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        while True:
            b, h = rng.randint(4, 20), rng.randint(3, 15)
            if (b * h) % 2 == 0:
                break
        ans = b * h // 2
        q = f"What is the area of a triangle with base {b} cm and height {h} cm?"
        return numeric_item(rng, q, ans, [b * h, b + h, ans + b, 2 * (b + h)], fmt=_unit(" cm²"))
    if kind == 1:
        w = rng.randint(4, 20)
        h = rng.randint(2, w - 1)
        ans = 2 * (w + h)
        q = f"What is the perimeter of a rectangle {w} cm long and {h} cm wide?"
        return numeric_item(rng, q, ans, [w * h, w + h, 2 * w + h, ans + 2], fmt=_unit(" cm"))
    r = rng.randint(3, 12)
    q = f"What is the area of a circle with radius {r} cm, in terms of π?"
    cands = [2 * r, 4 * r * r, r, 2 * r * r]
    return numeric_item(rng, q, r * r, cands, fmt=_unit("π cm²"))


TRIPLES = [(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25)]
POLYGONS = {5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon", 9: "nonagon", 10: "decagon"}


def geom_hard(rng: Random, n: int) -> Item:
    kind = n % 4
    if kind == 0:
        a, b, c = rng.choice(TRIPLES)
        k = rng.randint(1, 4) if c == 5 else rng.randint(1, 2)
        a, b, c = a * k, b * k, c * k
        q = f"A right triangle has legs of {a} cm and {b} cm. How long is the hypotenuse?"
        return numeric_item(rng, q, c, [a + b, c + 1, c - 1, c + 2, b + 1], fmt=_unit(" cm"))
    if kind == 1:
        s = rng.randint(2, 9)
        q = f"What is the volume of a cube with edges of {s} cm?"
        return numeric_item(rng, q, s**3, [6 * s * s, 3 * s, s * s, s**3 + s], fmt=_unit(" cm³"))
    if kind == 2:
        sides = rng.choice(sorted(POLYGONS))
        ans = (sides - 2) * 180
        q = f"What is the sum of the interior angles of a {POLYGONS[sides]}?"
        cands = [sides * 180, (sides - 1) * 180, 360, (sides - 3) * 180]
        return numeric_item(rng, q, ans, cands, fmt=_unit("°"))
    d = 2 * rng.randint(2, 10)
    q = f"What is the circumference of a circle with diameter {d} cm, in terms of π?"
    cands = [2 * d, d // 2, d * d // 4, d * d]
    return numeric_item(rng, q, d, cands, fmt=_unit("π cm"))


# (from unit, to unit, factor, numbers to convert)
CONV_EASY = [
    ("meters", "centimeters", 100, range(2, 10)),
    ("kilograms", "grams", 1000, range(2, 10)),
    ("kilometers", "meters", 1000, range(2, 10)),
    ("hours", "minutes", 60, range(2, 10)),
    ("minutes", "seconds", 60, range(2, 10)),
    ("weeks", "days", 7, range(2, 10)),
    ("liters", "milliliters", 1000, range(2, 10)),
]
CONV_MEDIUM = [
    ("centimeters", "meters", Fraction(1, 100), range(150, 1000, 100)),
    ("grams", "kilograms", Fraction(1, 1000), range(1500, 10000, 1000)),
    ("minutes", "hours", Fraction(1, 60), [90, 150, 45, 210, 75, 270, 135]),
    ("milliliters", "liters", Fraction(1, 1000), range(250, 5000, 500)),
    ("days", "hours", 24, range(2, 8)),
    ("feet", "inches", 12, range(2, 10)),
    ("yards", "feet", 3, range(4, 15)),
]
WRONG_FACTORS = [10, 100, 1000, 60, 12, 24, Fraction(1, 10), Fraction(1, 100), Fraction(1, 60)]


def _conversion(rng: Random, table: list) -> Item:
    src, dst, factor, values = rng.choice(table)
    value = rng.choice(list(values))
    ans = value * Fraction(factor)
    cands = [ans * 10, ans / 10] + [value * Fraction(f) for f in WRONG_FACTORS if f != factor]
    cands = cands[:2] + rng.sample(cands[2:], 3)
    return numeric_item(rng, f"How many {dst} are in {value} {src}?", ans, cands)


def unit_easy(rng: Random, n: int) -> Item:
    return _conversion(rng, CONV_EASY)


def unit_medium(rng: Random, n: int) -> Item:
    return _conversion(rng, CONV_MEDIUM)


def unit_hard(rng: Random, n: int) -> Item:
    kind = n % 4
    if kind == 0:
        v = 18 * rng.randint(1, 6)
        ans = Fraction(v * 1000, 3600)
        cands = [ans * 2, Fraction(v, 60), Fraction(v * 36, 10), ans + 5, ans * 10]
        q = f"A car travels at {v} km/h. What is its speed in meters per second?"
        return numeric_item(rng, q, ans, cands)
    if kind == 1:
        c = 5 * rng.randint(1, 20)
        f = Fraction(c * 9, 5) + 32
        cands = [Fraction(c * 9, 5), Fraction((c + 32) * 5, 9), c + 32, 2 * c + 30, f + 10]
        return numeric_item(rng, f"What is {c} °C in degrees Fahrenheit?", f, cands)
    if kind == 2:
        m = rng.randint(2, 9)
        q = f"How many square centimeters are in {m} square meters?"
        return numeric_item(rng, q, m * 10000, [m * 100, m * 1000, m * 1000000, m * 10])
    h = rng.randint(2, 5)
    q = f"How many seconds are in {h} hours?"
    return numeric_item(rng, q, h * 3600, [h * 60, h * 360, h * 36000, h * 600])


def _prob(favourable: int, total: int) -> Fraction:
    return Fraction(favourable, total)


def _prob_item(rng: Random, question: str, ans: Fraction, cands: list) -> Item:
    cands = [Fraction(c) for c in cands if 0 < Fraction(c) < 1]
    fallbacks = [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(2, 3), Fraction(1, 6)]
    return numeric_item(rng, question, ans, cands + fallbacks, fmt=fmt_frac)


DIE = range(1, 7)
DIE_EVENTS: list[tuple[str, Callable[[int], bool]]] = [
    ("an even number", lambda x: x % 2 == 0),
    ("an odd number", lambda x: x % 2 == 1),
    ("a number greater than 4", lambda x: x > 4),
    ("a number greater than 2", lambda x: x > 2),
    ("a number less than 3", lambda x: x < 3),
    ("a number less than 5", lambda x: x < 5),
    ("a multiple of 3", lambda x: x % 3 == 0),
    ("a prime number", lambda x: x in (2, 3, 5)),
]
COIN_EVENTS: list[tuple[str, Callable[[tuple[str, ...]], bool]]] = [
    ("both land heads", lambda o: o == ("H", "H")),
    ("both land tails", lambda o: o == ("T", "T")),
    ("one lands heads and the other tails", lambda o: sorted(o) == ["H", "T"]),
    ("at least one lands heads", lambda o: "H" in o),
]


def prob_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        k = rng.randint(1, 6)
        ans = _prob(sum(1 for x in DIE if x == k), 6)
        q = f"A fair six-sided die is rolled once. What is the probability of rolling a {k}?"
        return _prob_item(
            rng, q, ans, [Fraction(1, 2), Fraction(1, 3), Fraction(k, 6), Fraction(5, 6)]
        )
    if kind == 1:
        r, b = rng.sample(range(1, 10), 2)
        bag = ["red"] * r + ["blue"] * b
        ans = _prob(bag.count("red"), len(bag))
        q = (
            f"A bag holds {r} red and {b} blue marbles. One marble is drawn at random. "
            "What is the probability that it is red?"
        )
        cands = [Fraction(r, b), Fraction(b, r + b), Fraction(1, r + b), Fraction(r, r + b + 1)]
        return _prob_item(rng, q, ans, cands)
    sections = rng.randint(3, 10)
    k = rng.randint(1, sections)
    ans = _prob(sum(1 for x in range(1, sections + 1) if x == k), sections)
    q = (
        f"A spinner has {sections} equal sections numbered 1 to {sections}. "
        f"What is the probability of landing on {k}?"
    )
    cands = [Fraction(1, sections - 1), Fraction(k, sections), Fraction(sections - 1, sections)]
    return _prob_item(rng, q, ans, cands + [Fraction(1, sections + 1)])


def prob_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        name, event = rng.choice(DIE_EVENTS)
        fav = sum(1 for x in DIE if event(x))
        ans = _prob(fav, 6)
        q = f"A fair six-sided die is rolled. What is the probability of rolling {name}?"
        cands = [
            1 - ans,
            Fraction(1, 6),
            Fraction(fav + 1, 6),
            Fraction(fav - 1, 6),
            Fraction(fav, 5),
        ]
        return _prob_item(rng, q, ans, cands)
    if kind == 1:
        name, event = rng.choice(COIN_EVENTS)
        outcomes = list(itertools.product("HT", repeat=2))
        ans = _prob(sum(1 for o in outcomes if event(o)), len(outcomes))
        q = f"Two fair coins are flipped. What is the probability that {name}?"
        cands = [1 - ans, Fraction(1, 3), Fraction(1, 2), Fraction(1, 4), Fraction(2, 3)]
        return _prob_item(rng, q, ans, cands)
    r, b, g = rng.randint(2, 7), rng.randint(1, 6), rng.randint(1, 6)
    box = ["red"] * r + ["blue"] * b + ["green"] * g
    ans = _prob(sum(1 for x in box if x != "red"), len(box))
    q = (
        f"A box has {r} red, {b} blue and {g} green balls. One is picked at random. "
        "What is the probability that it is not red?"
    )
    total = len(box)
    cands = [Fraction(r, total), Fraction(b, total), Fraction(g, total), Fraction(1, 3)]
    return _prob_item(rng, q, ans, cands)


def prob_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        s = rng.randint(3, 11)
        outcomes = list(itertools.product(DIE, repeat=2))
        fav = sum(1 for a, b in outcomes if a + b == s)
        ans = _prob(fav, len(outcomes))
        q = f"Two fair six-sided dice are rolled. What is the probability that the total is {s}?"
        cands = [
            Fraction(1, 11),
            Fraction(1, 36),
            Fraction(fav + 1, 36),
            Fraction(fav - 1, 36),
            Fraction(fav, 12),
        ]
        return _prob_item(rng, q, ans, cands)
    if kind == 1:
        r, b = rng.randint(2, 6), rng.randint(2, 6)
        bag = ["red"] * r + ["blue"] * b
        draws = list(itertools.permutations(range(len(bag)), 2))
        fav = sum(1 for i, j in draws if bag[i] == bag[j] == "red")
        ans = _prob(fav, len(draws))
        total = r + b
        q = (
            f"A bag has {r} red and {b} blue marbles. Two are drawn without replacement. "
            "What is the probability that both are red?"
        )
        cands = [
            Fraction(r * r, total * total),
            Fraction(r, total),
            Fraction(r - 1, total - 1),
            Fraction(2 * r, total * total),
        ]
        return _prob_item(rng, q, ans, cands)
    flips = rng.randint(3, 5)
    outcomes = list(itertools.product("HT", repeat=flips))
    if n % 2 == 0:
        ans = _prob(sum(1 for o in outcomes if "H" in o), len(outcomes))
        q = f"A fair coin is flipped {flips} times. What is the probability of at least one head?"
    else:
        ans = _prob(sum(1 for o in outcomes if o.count("H") == 2), len(outcomes))
        q = f"A fair coin is flipped {flips} times. What is the probability of exactly two heads?"
    cands = [
        Fraction(1, 2**flips),
        Fraction(1, 2),
        1 - ans,
        Fraction(2, flips),
        Fraction(flips, 2**flips),
    ]
    return _prob_item(rng, q, ans, cands)


PRIMES = [11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]
ODD_COMPOSITES = [21, 27, 33, 39, 49, 51, 57, 63, 69, 77, 81, 87, 91, 93, 99]


def _divisors(x: int) -> list[int]:
    return [d for d in range(1, x + 1) if x % d == 0]


def _prime_factors(x: int) -> list[int]:
    out, p = [], 2
    while x > 1:
        while x % p == 0:
            out.append(p)
            x //= p
        p += 1
    return out


def num_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        b = rng.randint(3, 9)
        a = b * rng.randint(3, 12) + rng.randint(1, b - 1)
        ans = a % b
        q = f"What is the remainder when {a} is divided by {b}?"
        return numeric_item(rng, q, ans, [a // b, b - ans, ans + 1, ans - 1], positive=False)
    if kind == 1:
        prime = rng.choice(PRIMES)
        others = rng.sample(ODD_COMPOSITES, 3)
        shown = sorted([prime, *others])
        listed = ", ".join(str(x) for x in shown[:3]) + f" or {shown[3]}"
        q = f"Which of these numbers is prime: {listed}?"
        return q, str(prime), [str(x) for x in others]
    g = rng.randint(2, 9)
    m, k = rng.sample([x for x in range(2, 8)], 2)
    while math.gcd(m, k) != 1:
        m, k = rng.sample([x for x in range(2, 8)], 2)
    a, b = g * m, g * k
    ans = math.gcd(a, b)
    q = f"What is the greatest common divisor of {a} and {b}?"
    return numeric_item(rng, q, ans, [min(a, b), ans * 2, 1, ans + 1, math.lcm(a, b)])


def num_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        a, b = rng.sample(range(4, 16), 2)
        ans = math.lcm(a, b)
        q = f"What is the least common multiple of {a} and {b}?"
        return numeric_item(rng, q, ans, [a * b, max(a, b), math.gcd(a, b), ans * 2, ans + a])
    if kind == 1:
        x = rng.randint(12, 60)
        cnt = len(_divisors(x))
        q = f"How many positive divisors does {x} have?"
        return numeric_item(rng, q, cnt, [cnt + 1, cnt - 1, cnt + 2, cnt - 2, cnt * 2])
    x = rng.randint(5, 31)
    ans = format(x, "b")
    cands = [
        format(x ^ 1, "b"),
        format(x ^ 2, "b"),
        format(x + 1, "b"),
        ans[::-1],
        format(x ^ 4, "b"),
    ]
    cands = [c.lstrip("0") or "0" for c in cands]
    return f"What is {x} written in binary?", ans, pick_distractors(rng, ans, cands)


def num_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        x = rng.randint(33, 127)
        bits = format(x, "b")
        q = f"What is the binary number {bits} in decimal?"
        cands = [x + 1, x - 1, x ^ 2, int(bits[::-1], 2), x ^ 8, x ^ 16]
        return numeric_item(rng, q, x, cands)
    if kind == 1:
        x = rng.randint(100, 255)
        ans = format(x, "X")
        cands = [
            f"{x // 16}{x % 16}",
            format(x + 1, "X"),
            ans[::-1],
            format(x + 16, "X"),
            format(x - 1, "X"),
        ]
        return f"What is {x} written in hexadecimal?", ans, pick_distractors(rng, ans, cands)
    while True:
        x = math.prod(
            rng.choice([2, 3, 5, 7, 11, 13, 17, 19, 23]) for _ in range(rng.randint(2, 3))
        )
        factors = _prime_factors(x)
        if 30 <= x <= 300 and len(set(factors)) >= 2:
            break
    ans = max(factors)
    cands = [min(factors), x // ans, ans + 2, ans + 1, ans - 1]
    return numeric_item(rng, f"What is the largest prime factor of {x}?", ans, cands)


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = list(calendar.month_name)[1:]


def _weekday_item(rng: Random, question: str, ans_index: int) -> Item:
    ans = DAYS[ans_index % 7]
    cands = [DAYS[(ans_index + d) % 7] for d in (1, -1, 2, -2, 3)]
    return question, ans, pick_distractors(rng, ans, cands)


def _month_day(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}"


def date_easy(rng: Random, n: int) -> Item:
    kind = n % 2
    if kind == 0:
        start, k = rng.randrange(7), rng.randint(2, 6)
        q = f"If today is {DAYS[start]}, what day of the week will it be in {k} days?"
        return _weekday_item(rng, q, start + k)
    year = rng.choice([2021, 2022, 2023, 2025])
    month = rng.choice([m for m in range(1, 13) if m != 2])
    ans = calendar.monthrange(year, month)[1]
    q = f"How many days are in {MONTHS[month - 1]} {year}?"
    return numeric_item(rng, q, ans, [61 - ans, 28, 29], pool_size=3)


def date_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        start, k = rng.randrange(7), rng.randint(8, 30)
        q = f"If today is {DAYS[start]}, what day of the week will it be {k} days from now?"
        return _weekday_item(rng, q, start + k)
    if kind == 1:
        start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(330))
        k = rng.randint(10, 25)
        end = start + dt.timedelta(days=k)
        cands = [_month_day(end + dt.timedelta(days=d)) for d in (1, -1, 2, -2)]
        q = f"What date is {k} days after {_month_day(start)}, 2023?"
        return q, _month_day(end), pick_distractors(rng, _month_day(end), cands)
    start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(300))
    end = start + dt.timedelta(days=rng.randint(20, 60))
    ans = (end - start).days
    naive = (end.month - start.month) * 30 + end.day - start.day
    q = f"How many days are there from {_month_day(start)} to {_month_day(end)}, 2023?"
    return numeric_item(rng, q, ans, [ans + 1, ans - 1, naive, ans + 2])


LEAP_CANDIDATES = [1996, 2000, 2004, 2012, 2016, 2020, 2024]
NON_LEAP_CANDIDATES = [1900, 1998, 2001, 2010, 2018, 2022, 2023, 2100]


def date_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        d = dt.date(1970, 1, 1) + dt.timedelta(days=rng.randrange(60 * 365))
        q = f"What day of the week was {_month_day(d)}, {d.year}?"
        return _weekday_item(rng, q, d.weekday())
    if kind == 1:
        year = [1900, 2000, 2023, 2024, 2100, 1996][(n // 3) % 6]
        ans = calendar.monthrange(year, 2)[1]
        return numeric_item(
            rng, f"How many days are in February {year}?", ans, [57 - ans, 30, 31], pool_size=3
        )
    leap = rng.choice(LEAP_CANDIDATES)
    others = rng.sample(NON_LEAP_CANDIDATES, 3)
    assert calendar.isleap(leap) and not any(calendar.isleap(y) for y in others)
    shown = sorted([leap, *others])
    listed = ", ".join(str(y) for y in shown[:3]) + f" or {shown[3]}"
    return f"Which of these years is a leap year: {listed}?", str(leap), [str(y) for y in others]


# Snippets for python_code: (difficulty, code, plausible wrong outputs). Gold = real output.
PY_SNIPPETS: list[tuple[str, str, list[str]]] = [
    ("easy", "print(3 + 4 * 2)", ["14", "10", "24"]),
    ("easy", "print(len('hello'))", ["4", "6", "hello"]),
    ("easy", "print('ab' * 3)", ["ab3", "ab ab ab", "aaabbb"]),
    ("easy", "x = 10\nx = x + 5\nprint(x)", ["10", "5", "105"]),
    ("easy", "print(10 // 3)", ["3.33", "4", "1"]),
    ("easy", "print('Hello'[0])", ["e", "o", "Hello"]),
    ("easy", "print(max(4, 9, 2))", ["4", "2", "15"]),
    ("medium", "print(10 % 4)", ["2.5", "4", "0"]),
    ("medium", "nums = [4, 7, 1]\nprint(sum(nums))", ["7", "471", "3"]),
    ("medium", "print([1, 2, 3][-1])", ["1", "-1", "2"]),
    ("medium", "s = 'python'\nprint(s[1:4])", ["pyt", "ytho", "pyth"]),
    ("medium", "total = 0\nfor i in range(4):\n    total += i\nprint(total)", ["10", "4", "3"]),
    ("medium", "print(2 ** 5)", ["10", "25", "7"]),
    ("medium", "print(7 / 2)", ["3", "4", "3.0"]),
    ("medium", "print(sorted([3, 1, 2]))", ["[3, 2, 1]", "[3, 1, 2]", "[1, 3, 2]"]),
    ("hard", "x = [1, 2, 3]\ny = x\ny.append(4)\nprint(len(x))", ["3", "5", "1"]),
    ("hard", "print(bool('') or 'yes')", ["True", "False", "None"]),
    ("hard", "d = {'a': 1, 'b': 2}\nprint(d.get('c', 0))", ["None", "KeyError", "2"]),
    ("hard", "print(list(range(2, 10, 3)))", ["[2, 5, 8, 11]", "[3, 6, 9]", "[2, 4, 6, 8]"]),
    ("hard", "def f(n):\n    return n * 2\nprint(f(f(3)))", ["6", "9", "36"]),
    ("hard", "print('a,b,c'.split(','))", ["['a,b,c']", "abc", "['a', ',', 'b', ',', 'c']"]),
    ("hard", "print('banana'.replace('a', 'o', 2))", ["bonono", "banono", "banana"]),
]
PY_PROMPT = "What does this Python code print?\n"


def run_python(code: str) -> str:
    """Run a snippet and return what it printed (without the final newline)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(code, {})  # noqa: S102 - our own fixed snippets
    return buf.getvalue().rstrip("\n")


WORDS_SHORT = ["cat", "lamp", "frog", "plant", "stone", "river", "cloud", "mango", "tiger"]
WORDS_SHORT += ["bread", "sugar", "horse", "lemon"]
WORDS_LONG = ["garden", "planet", "window", "rocket", "pencil", "silver", "orange", "castle"]
WORDS_LONG += ["forest", "dragon", "basket", "computer", "elephant", "butterfly", "chocolate"]
WORDS_LONG += ["mountain", "umbrella", "dinosaur", "calendar", "triangle"]
WORDS_REPEAT = ["banana", "mississippi", "strawberry", "balloon", "committee", "coffee"]
WORDS_REPEAT += ["pepper", "assessment", "bookkeeper", "letter", "address", "cinnamon"]
VOWELS = "aeiou"


def _swap(s: str, i: int) -> str:
    return s[:i] + s[i + 1] + s[i] + s[i + 2 :]


def str_easy(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        w = rng.choice(WORDS_SHORT)
        ans = w[::-1]
        cands = [w, _swap(ans, 0), _swap(ans, len(w) - 2), "".join(sorted(w)), _swap(ans, 1)]
        q = f"What is the word '{w}' spelled backwards?"
        return q, ans, pick_distractors(rng, ans, cands)
    if kind == 1:
        w = rng.choice(WORDS_LONG)
        q = f"How many letters are in the word '{w}'?"
        return numeric_item(rng, q, len(w), [len(w) + 1, len(w) - 1, len(w) + 2, len(w) - 2])
    w = rng.choice(WORDS_LONG)
    ans = w[-1]
    cands = [w[0], w[-2], w[1], w[2], w[-3]]
    return f"What is the last letter of the word '{w}'?", ans, pick_distractors(rng, ans, cands)


def str_medium(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        w = rng.choice(WORDS_REPEAT)
        letter = rng.choice(sorted(c for c in set(w) if w.count(c) >= 2))
        cnt = w.count(letter)
        q = f"How many times does the letter '{letter}' appear in '{w}'?"
        return numeric_item(rng, q, cnt, [cnt + 1, cnt - 1, cnt + 2, len(w) - cnt])
    if kind == 1:
        w = rng.choice(WORDS_LONG)
        ans = w.upper()
        cands = [w.capitalize(), w[:-1].upper() + w[-1], w[0] + w[1:].upper(), ans[::-1]]
        q = f"What is '{w}' written in all capital letters?"
        return q, ans, pick_distractors(rng, ans, cands)
    words = rng.sample(WORDS_SHORT + WORDS_LONG, 4)
    ans = min(words)
    listed = ", ".join(words[:3]) + f" or {words[3]}"
    q = f"Which word comes first in alphabetical order: {listed}?"
    return q, ans, [w for w in words if w != ans]


def str_hard(rng: Random, n: int) -> Item:
    kind = n % 3
    if kind == 0:
        w = rng.choice(WORDS_LONG)
        ans = "".join(c for c in w if c not in VOWELS)
        first_vowel = next(i for i, c in enumerate(w) if c in VOWELS)
        cands = [
            "".join(c for c in w if c in VOWELS),
            w[:first_vowel] + w[first_vowel + 1 :],
            "".join(c for c in w if c not in VOWELS + "y"),
            ans[:-1],
            w[0] + ans[1:] if w[0] in VOWELS else ans + w[-1],
        ]
        q = f"What do you get if you remove every vowel (a, e, i, o, u) from '{w}'?"
        return q, ans, pick_distractors(rng, ans, cands)
    if kind == 1:
        w = rng.choice([x for x in WORDS_SHORT + WORDS_LONG if 4 <= len(x) <= 6])
        ans = "".join(sorted(w))
        cands = [ans[::-1], w[::-1], _swap(ans, 0), _swap(ans, 2), _swap(ans, len(w) - 2)]
        q = f"What are the letters of '{w}' arranged in alphabetical order?"
        return q, ans, pick_distractors(rng, ans, cands)
    w = rng.choice(WORDS_LONG + WORDS_REPEAT)
    cnt = sum(1 for c in w if c in VOWELS)
    q = f"How many vowels (a, e, i, o, u) are in the word '{w}'?"
    return numeric_item(rng, q, cnt, [cnt + 1, cnt - 1, len(w) - cnt, cnt + 2])


# Computed subjects: (subject, id prefix, [(difficulty, count, generator), ...])
COMPUTED: list[tuple[str, str, list[tuple[str, int, Generator]]]] = [
    (
        "arithmetic",
        "arith",
        [("easy", 7, arith_easy), ("medium", 6, arith_medium), ("hard", 5, arith_hard)],
    ),
    (
        "percentages",
        "pct",
        [("easy", 5, pct_easy), ("medium", 6, pct_medium), ("hard", 4, pct_hard)],
    ),
    (
        "fractions",
        "frac",
        [("easy", 6, frac_easy), ("medium", 6, frac_medium), ("hard", 4, frac_hard)],
    ),
    ("algebra", "alg", [("easy", 6, alg_easy), ("medium", 6, alg_medium), ("hard", 4, alg_hard)]),
    (
        "geometry",
        "geom",
        [("easy", 6, geom_easy), ("medium", 6, geom_medium), ("hard", 4, geom_hard)],
    ),
    (
        "unit_conversion",
        "unit",
        [("easy", 6, unit_easy), ("medium", 5, unit_medium), ("hard", 4, unit_hard)],
    ),
    (
        "probability",
        "prob",
        [("easy", 6, prob_easy), ("medium", 6, prob_medium), ("hard", 4, prob_hard)],
    ),
    (
        "number_theory",
        "num",
        [("easy", 6, num_easy), ("medium", 6, num_medium), ("hard", 4, num_hard)],
    ),
    (
        "calendar_dates",
        "date",
        [("easy", 6, date_easy), ("medium", 6, date_medium), ("hard", 4, date_hard)],
    ),
    (
        "string_manipulation",
        "str",
        [("easy", 6, str_easy), ("medium", 6, str_medium), ("hard", 4, str_hard)],
    ),
]


def computed_items(spec: list[tuple[str, int, Generator]], rng: Random) -> list[tuple[str, Item]]:
    """Run the generators until each has produced ``count`` items with new question texts."""
    out: list[tuple[str, Item]] = []
    seen: set[str] = set()
    for difficulty, count, gen in spec:
        made = attempts = 0
        while made < count:
            attempts += 1
            if attempts > 500:
                raise RuntimeError(f"{gen.__name__}: could not make {count} distinct questions")
            item = gen(rng, made)
            if item[0] in seen:
                continue
            seen.add(item[0])
            out.append((difficulty, item))
            made += 1
    return out


def python_items() -> list[tuple[str, Item]]:
    out = []
    rng = Random(_seed("python_code-distractors"))
    for difficulty, code, wrong in PY_SNIPPETS:
        gold = run_python(code)
        out.append((difficulty, (PY_PROMPT + code, gold, pick_distractors(rng, gold, wrong))))
    return out


# --------------------------------------------------------------------------------------------
# Knowledge subjects (hand-written): (difficulty, question, correct, wrong, wrong, wrong)
# --------------------------------------------------------------------------------------------

K = tuple[str, str, str, str, str, str]

PHYSICS: list[K] = [
    (
        "easy",
        "What force pulls objects toward the ground on Earth?",
        "Gravity",
        "Magnetism",
        "Friction",
        "Tension",
    ),
    ("easy", "What is the SI unit of force?", "Newton", "Joule", "Watt", "Pascal"),
    (
        "easy",
        "At sea level, at what temperature in degrees Celsius does pure water boil?",
        "100",
        "90",
        "50",
        "212",
    ),
    ("easy", "What is the SI unit of electric current?", "Ampere", "Volt", "Ohm", "Watt"),
    ("easy", "Which of these travels fastest?", "Light", "Sound", "A jet plane", "A bullet"),
    (
        "easy",
        "What is the energy of a moving object called?",
        "Kinetic energy",
        "Potential energy",
        "Nuclear energy",
        "Elastic energy",
    ),
    ("easy", "What does a thermometer measure?", "Temperature", "Pressure", "Mass", "Speed"),
    ("medium", "What is the SI unit of power?", "Watt", "Joule", "Newton", "Volt"),
    (
        "medium",
        "By Ohm's law, voltage equals current multiplied by what?",
        "Resistance",
        "Power",
        "Charge",
        "Time",
    ),
    (
        "medium",
        "What is the approximate speed of light in a vacuum?",
        "300,000 km per second",
        "300 km per second",
        "3,000 km per second",
        "30,000,000 km per second",
    ),
    (
        "medium",
        "Ignoring air resistance, what is the acceleration of a falling object near Earth's surface?",
        "About 9.8 m/s²",
        "About 1 m/s²",
        "About 98 m/s²",
        "Zero",
    ),
    (
        "medium",
        "Which color of visible light has the longest wavelength?",
        "Red",
        "Violet",
        "Blue",
        "Green",
    ),
    ("medium", "Sound cannot travel through which of these?", "A vacuum", "Water", "Steel", "Air"),
    ("medium", "What is the SI unit of frequency?", "Hertz", "Decibel", "Tesla", "Coulomb"),
    (
        "hard",
        "Which formula states Newton's second law of motion?",
        "F = ma",
        "E = mc²",
        "V = IR",
        "P = IV",
    ),
    (
        "hard",
        "If the distance between two masses doubles, how does the gravitational force between them change?",
        "It becomes one quarter as strong",
        "It becomes half as strong",
        "It becomes twice as strong",
        "It becomes four times as strong",
    ),
    (
        "hard",
        "A lens that is thicker in the middle than at the edges is called what?",
        "A convex lens",
        "A concave lens",
        "A plane mirror",
        "A prism",
    ),
]

CHEMISTRY: list[K] = [
    ("easy", "What is the chemical formula of water?", "H2O", "CO2", "O2", "NaCl"),
    ("easy", "What is the chemical symbol for gold?", "Au", "Ag", "Go", "Gd"),
    ("easy", "What is the chemical symbol for oxygen?", "O", "Ox", "Om", "Oy"),
    (
        "easy",
        "Table salt is mostly which compound?",
        "Sodium chloride",
        "Calcium carbonate",
        "Potassium nitrate",
        "Sodium bicarbonate",
    ),
    ("easy", "What is the pH of pure water at 25 °C?", "7", "0", "1", "14"),
    ("easy", "What is the chemical symbol for sodium?", "Na", "So", "Sd", "Sn"),
    ("easy", "Which of these is a noble gas?", "Neon", "Nitrogen", "Oxygen", "Hydrogen"),
    ("medium", "What is the atomic number of carbon?", "6", "12", "8", "14"),
    (
        "medium",
        "How is a solution with a pH of 2 best described?",
        "Strongly acidic",
        "Neutral",
        "Strongly basic",
        "Weakly basic",
    ),
    ("medium", "What is the chemical formula for carbon dioxide?", "CO2", "CO", "C2O", "CH4"),
    (
        "medium",
        "Which particle in an atom has a negative charge?",
        "Electron",
        "Proton",
        "Neutron",
        "Nucleus",
    ),
    (
        "medium",
        "Rust forms when iron reacts with oxygen and what else?",
        "Water",
        "Nitrogen",
        "Helium",
        "Carbon",
    ),
    (
        "medium",
        "What type of bond forms when two atoms share electrons?",
        "Covalent bond",
        "Ionic bond",
        "Metallic bond",
        "Hydrogen bond",
    ),
    (
        "hard",
        "What is Avogadro's number, approximately?",
        "6.02 × 10^23",
        "3.00 × 10^8",
        "1.60 × 10^-19",
        "9.81 × 10^2",
    ),
    (
        "hard",
        "Which element has the chemical symbol K?",
        "Potassium",
        "Krypton",
        "Calcium",
        "Carbon",
    ),
    (
        "hard",
        "Which element is the most electronegative?",
        "Fluorine",
        "Oxygen",
        "Chlorine",
        "Nitrogen",
    ),
]

BIOLOGY: list[K] = [
    (
        "easy",
        "Which organ pumps blood around the human body?",
        "Heart",
        "Lungs",
        "Liver",
        "Kidneys",
    ),
    (
        "easy",
        "Which gas do plants take in from the air to make their food?",
        "Carbon dioxide",
        "Oxygen",
        "Nitrogen",
        "Helium",
    ),
    ("easy", "What is the basic unit of life?", "The cell", "The atom", "The organ", "The tissue"),
    ("easy", "How many legs does an insect have?", "6", "4", "8", "10"),
    ("easy", "Which organs do humans use to breathe?", "Lungs", "Stomach", "Heart", "Liver"),
    (
        "easy",
        "Which part of a plant takes up water from the soil?",
        "Roots",
        "Leaves",
        "Flowers",
        "Fruit",
    ),
    ("easy", "What do bees make from flower nectar?", "Honey", "Milk", "Silk", "Sap"),
    (
        "medium",
        "Which molecule carries genetic information in most living things?",
        "DNA",
        "ATP",
        "Glucose",
        "Cholesterol",
    ),
    (
        "medium",
        "Which part of the cell releases energy from food and is called its powerhouse?",
        "Mitochondria",
        "Nucleus",
        "Ribosome",
        "Cell wall",
    ),
    (
        "medium",
        "Which pigment makes plant leaves green?",
        "Chlorophyll",
        "Hemoglobin",
        "Melanin",
        "Carotene",
    ),
    (
        "medium",
        "Which blood cells help the body fight infections?",
        "White blood cells",
        "Red blood cells",
        "Platelets",
        "Nerve cells",
    ),
    (
        "medium",
        "What kind of animal is a whale?",
        "A mammal",
        "A fish",
        "A reptile",
        "An amphibian",
    ),
    (
        "medium",
        "Which blood vessels carry blood away from the heart?",
        "Arteries",
        "Veins",
        "Capillaries",
        "Lymph vessels",
    ),
    ("hard", "How many chromosomes does a typical human body cell have?", "46", "23", "44", "48"),
    (
        "hard",
        "Which kind of cell division makes two genetically identical daughter cells?",
        "Mitosis",
        "Meiosis",
        "Fertilization",
        "Mutation",
    ),
    (
        "hard",
        "Who proposed the theory of evolution by natural selection?",
        "Charles Darwin",
        "Gregor Mendel",
        "Louis Pasteur",
        "Isaac Newton",
    ),
]

EARTH_SCIENCE: list[K] = [
    (
        "easy",
        "Which gas makes up most of Earth's atmosphere?",
        "Nitrogen",
        "Oxygen",
        "Carbon dioxide",
        "Hydrogen",
    ),
    (
        "easy",
        "What is the closest star to Earth?",
        "The Sun",
        "Proxima Centauri",
        "Sirius",
        "Polaris",
    ),
    ("easy", "Which planet is known as the Red Planet?", "Mars", "Venus", "Jupiter", "Saturn"),
    (
        "easy",
        "How long does it take Earth to travel once around the Sun?",
        "About one year",
        "About one day",
        "About one month",
        "About ten years",
    ),
    (
        "easy",
        "Which is the largest planet in our solar system?",
        "Jupiter",
        "Saturn",
        "Earth",
        "Neptune",
    ),
    (
        "easy",
        "What causes day and night on Earth?",
        "Earth spinning on its axis",
        "Earth orbiting the Sun",
        "The Moon blocking the Sun",
        "Clouds covering the sky",
    ),
    ("easy", "Which planet is closest to the Sun?", "Mercury", "Venus", "Mars", "Earth"),
    (
        "medium",
        "What type of rock forms when lava or magma cools and hardens?",
        "Igneous rock",
        "Sedimentary rock",
        "Metamorphic rock",
        "Limestone",
    ),
    (
        "medium",
        "Which layer high in the atmosphere absorbs much of the Sun's ultraviolet light?",
        "The ozone layer",
        "The mantle",
        "The crust",
        "The water table",
    ),
    (
        "medium",
        "Which instrument measures air pressure?",
        "Barometer",
        "Thermometer",
        "Anemometer",
        "Hygrometer",
    ),
    (
        "medium",
        "What is the outermost solid layer of Earth called?",
        "The crust",
        "The mantle",
        "The outer core",
        "The inner core",
    ),
    (
        "medium",
        "What is the main cause of ocean tides?",
        "The Moon's gravity",
        "Wind",
        "Earthquakes",
        "Ocean currents",
    ),
    (
        "hard",
        "What does the moment magnitude scale measure?",
        "The size of earthquakes",
        "The strength of hurricanes",
        "The height of tides",
        "The depth of lakes",
    ),
    (
        "hard",
        "What causes Earth's seasons?",
        "The tilt of Earth's axis",
        "Earth's changing distance from the Sun",
        "The phases of the Moon",
        "Changes in the Sun's brightness",
    ),
    (
        "hard",
        "In which layer of the atmosphere does most weather happen?",
        "Troposphere",
        "Stratosphere",
        "Mesosphere",
        "Thermosphere",
    ),
    (
        "hard",
        "Which type of rock often contains fossils because it forms from layers of sediment?",
        "Sedimentary rock",
        "Igneous rock",
        "Metamorphic rock",
        "Volcanic glass",
    ),
]

GEOGRAPHY: list[K] = [
    ("easy", "What is the capital of France?", "Paris", "Lyon", "Marseille", "Nice"),
    (
        "easy",
        "Which is the largest ocean on Earth?",
        "Pacific Ocean",
        "Atlantic Ocean",
        "Indian Ocean",
        "Arctic Ocean",
    ),
    ("easy", "On which continent is Kenya?", "Africa", "Asia", "South America", "Europe"),
    ("easy", "What is the capital of Japan?", "Tokyo", "Osaka", "Kyoto", "Seoul"),
    ("easy", "On which continent is Brazil?", "South America", "Africa", "Europe", "North America"),
    ("easy", "What is the capital of Italy?", "Rome", "Milan", "Venice", "Naples"),
    (
        "easy",
        "Which imaginary line lies at 0 degrees latitude?",
        "The Equator",
        "The Prime Meridian",
        "The Tropic of Cancer",
        "The Arctic Circle",
    ),
    ("medium", "What is the capital of Australia?", "Canberra", "Sydney", "Melbourne", "Perth"),
    (
        "medium",
        "Which river flows through Cairo?",
        "The Nile",
        "The Amazon",
        "The Danube",
        "The Ganges",
    ),
    (
        "medium",
        "Which is the largest country by area?",
        "Russia",
        "Canada",
        "China",
        "United States",
    ),
    (
        "medium",
        "Mount Everest lies on the border between Nepal and which other country?",
        "China",
        "India",
        "Bhutan",
        "Pakistan",
    ),
    ("medium", "What is the capital of Canada?", "Ottawa", "Toronto", "Vancouver", "Montreal"),
    (
        "hard",
        "Which is the largest hot desert in the world?",
        "Sahara",
        "Gobi",
        "Kalahari",
        "Mojave",
    ),
    ("hard", "What is the capital of Turkey?", "Ankara", "Istanbul", "Izmir", "Antalya"),
    (
        "hard",
        "Which narrow strait separates southern Spain from Morocco?",
        "The Strait of Gibraltar",
        "The Bosphorus",
        "The Strait of Hormuz",
        "The Bering Strait",
    ),
    (
        "hard",
        "Which country has the most time zones when its overseas territories are included?",
        "France",
        "Russia",
        "China",
        "Brazil",
    ),
]

WORLD_HISTORY: list[K] = [
    (
        "easy",
        "Who was the first President of the United States?",
        "George Washington",
        "Abraham Lincoln",
        "Thomas Jefferson",
        "John Adams",
    ),
    (
        "easy",
        "In which country were the ancient pyramids of Giza built?",
        "Egypt",
        "Mexico",
        "Greece",
        "Peru",
    ),
    ("easy", "In what year did World War II end?", "1945", "1918", "1939", "1950"),
    (
        "easy",
        "Who was the first person to walk on the Moon?",
        "Neil Armstrong",
        "Buzz Aldrin",
        "Yuri Gagarin",
        "John Glenn",
    ),
    (
        "easy",
        "Who developed the theory of relativity?",
        "Albert Einstein",
        "Isaac Newton",
        "Galileo Galilei",
        "Niels Bohr",
    ),
    (
        "easy",
        "Which wall in Germany fell in 1989?",
        "The Berlin Wall",
        "Hadrian's Wall",
        "The Great Wall",
        "The Western Wall",
    ),
    ("medium", "In what year did World War I begin?", "1914", "1905", "1918", "1939"),
    (
        "medium",
        "Which civilization built Machu Picchu?",
        "The Inca",
        "The Aztecs",
        "The Maya",
        "The Romans",
    ),
    (
        "medium",
        "In which year did Christopher Columbus first reach the Americas?",
        "1492",
        "1066",
        "1588",
        "1776",
    ),
    (
        "medium",
        "Which passenger ship sank in 1912 after hitting an iceberg?",
        "Titanic",
        "Lusitania",
        "Mayflower",
        "Bismarck",
    ),
    (
        "medium",
        "Who led India's nonviolent movement for independence from Britain?",
        "Mahatma Gandhi",
        "Nelson Mandela",
        "Martin Luther King Jr.",
        "Winston Churchill",
    ),
    (
        "medium",
        "Which empire was founded by Genghis Khan?",
        "The Mongol Empire",
        "The Ottoman Empire",
        "The Byzantine Empire",
        "The Mughal Empire",
    ),
    (
        "hard",
        "In which year was the Magna Carta sealed in England?",
        "1215",
        "1066",
        "1492",
        "1649",
    ),
    (
        "hard",
        "In which city did the French Revolution begin with the storming of the Bastille?",
        "Paris",
        "Lyon",
        "Versailles",
        "Marseille",
    ),
    (
        "hard",
        "Who was the first emperor of a unified China?",
        "Qin Shi Huang",
        "Kublai Khan",
        "Sun Yat-sen",
        "Confucius",
    ),
    (
        "hard",
        "Which invention by Johannes Gutenberg spread printed books across Europe around 1450?",
        "The movable-type printing press",
        "The telescope",
        "The steam engine",
        "The telegraph",
    ),
]

VOCABULARY: list[K] = [
    ("easy", "Which word means the opposite of 'hot'?", "cold", "warm", "big", "fast"),
    (
        "easy",
        "What does 'happy' mean?",
        "Feeling glad",
        "Feeling sad",
        "Feeling sleepy",
        "Feeling angry",
    ),
    ("easy", "Which word means the same as 'big'?", "large", "tiny", "thin", "short"),
    ("easy", "What is the opposite of 'early'?", "late", "soon", "fast", "first"),
    ("easy", "Which word means 'very tired'?", "exhausted", "excited", "hungry", "curious"),
    ("easy", "A puppy is a young what?", "Dog", "Cat", "Horse", "Cow"),
    ("medium", "What does 'ancient' mean?", "Very old", "Very new", "Very fast", "Very loud"),
    ("medium", "Which word means the same as 'brave'?", "courageous", "fearful", "lazy", "polite"),
    (
        "medium",
        "What does 'fragile' mean?",
        "Easily broken",
        "Very heavy",
        "Very strong",
        "Brightly colored",
    ),
    ("medium", "What is the opposite of 'generous'?", "selfish", "kind", "rich", "honest"),
    ("medium", "What does 'transparent' mean?", "See-through", "Dark", "Waterproof", "Sticky"),
    (
        "medium",
        "In science, what is a 'hypothesis'?",
        "A testable proposed explanation",
        "A proven law",
        "A unit of measurement",
        "A list of results",
    ),
    (
        "hard",
        "What does 'benevolent' mean?",
        "Kind and generous",
        "Angry and cruel",
        "Shy and quiet",
        "Quick and clever",
    ),
    (
        "hard",
        "What does 'ubiquitous' mean?",
        "Found everywhere",
        "Very rare",
        "Extremely large",
        "Hard to understand",
    ),
    (
        "hard",
        "Which word means 'to make something less severe'?",
        "mitigate",
        "aggravate",
        "celebrate",
        "imitate",
    ),
    (
        "hard",
        "What does 'ephemeral' mean?",
        "Lasting a very short time",
        "Lasting forever",
        "Very heavy",
        "Full of energy",
    ),
]

GRAMMAR: list[K] = [
    (
        "easy",
        "Choose the correct word: She ___ to school every day.",
        "goes",
        "go",
        "going",
        "gone",
    ),
    ("easy", "What is the plural of 'child'?", "children", "childs", "childes", "childrens"),
    (
        "easy",
        "Which word is a noun in the sentence 'The dog runs fast'?",
        "dog",
        "runs",
        "fast",
        "the",
    ),
    ("easy", "What is the past tense of 'eat'?", "ate", "eated", "eating", "eats"),
    ("easy", "Choose the correct word: I have two ___.", "apples", "apple", "an apple", "apple's"),
    (
        "easy",
        "Which word is a verb in the sentence 'Birds sing in the morning'?",
        "sing",
        "birds",
        "morning",
        "in",
    ),
    ("easy", "What is the past tense of 'go'?", "went", "goed", "going", "goes"),
    (
        "medium",
        "Choose the correct word: They ___ playing football right now.",
        "are",
        "is",
        "am",
        "be",
    ),
    ("medium", "Choose the correct word: I ate ___ orange for lunch.", "an", "a", "two", "many"),
    (
        "medium",
        "Which sentence is written correctly?",
        "He doesn't like apples.",
        "He don't like apples.",
        "He not like apples.",
        "He doesn't likes apples.",
    ),
    ("medium", "What is the comparative form of 'good'?", "better", "gooder", "best", "more good"),
    ("medium", "Choose the correct word: The cat licked ___ paw.", "its", "it's", "it", "its'"),
    (
        "hard",
        "Choose the correct word: If I ___ you, I would study more.",
        "were",
        "am",
        "is",
        "be",
    ),
    (
        "hard",
        "Which word is an adverb in the sentence 'She sang beautifully at the concert'?",
        "beautifully",
        "sang",
        "concert",
        "she",
    ),
    (
        "hard",
        "Choose the correct word: Each of the students ___ a book.",
        "has",
        "have",
        "having",
        "be having",
    ),
    (
        "hard",
        "Which word is a conjunction in 'I wanted tea, but the shop was closed'?",
        "but",
        "wanted",
        "shop",
        "closed",
    ),
    (
        "hard",
        "What is the past participle of 'write', as in 'I have ___ a letter'?",
        "written",
        "wrote",
        "writed",
        "writing",
    ),
]

READING: list[K] = [
    (
        "easy",
        "Read: 'Tom has a red ball and a blue kite. He gave the kite to his sister.' What does Tom still have?",
        "A red ball",
        "A blue kite",
        "A red kite",
        "Nothing",
    ),
    (
        "easy",
        "Read: 'Maria woke up at seven. She ate breakfast and then walked to school.' What did Maria do right after breakfast?",
        "She walked to school",
        "She woke up",
        "She went to sleep",
        "She ate lunch",
    ),
    (
        "easy",
        "Read: 'The shop opens at 9 a.m. and closes at 5 p.m. It is closed on Sundays.' On which day is the shop closed?",
        "Sunday",
        "Monday",
        "Saturday",
        "Friday",
    ),
    (
        "easy",
        "Read: 'Sam's cat is black. Lily's cat is white. Sam's dog is brown.' What color is Lily's cat?",
        "White",
        "Black",
        "Brown",
        "Gray",
    ),
    (
        "easy",
        "Read: 'It rained all morning, so the children played inside. In the afternoon the sun came out.' Why did the children play inside?",
        "Because it was raining",
        "Because it was too hot",
        "Because they were sick",
        "Because it was night",
    ),
    (
        "easy",
        "Read: 'Anna bought three apples and two pears at the market.' How many pieces of fruit did Anna buy?",
        "5",
        "3",
        "2",
        "6",
    ),
    (
        "medium",
        "Read: 'The room was silent except for a ticking clock. Ben turned the library book's pages slowly, careful not to disturb the other readers.' What was Ben doing?",
        "Reading",
        "Sleeping",
        "Cooking",
        "Running",
    ),
    (
        "medium",
        "Read: 'Priya practiced the piano every day for a month. At the concert, she played without a single mistake.' What most likely helped Priya play well?",
        "Her daily practice",
        "Luck",
        "A new piano",
        "A quiet audience",
    ),
    (
        "medium",
        "Read: 'Leo is taller than Max. Max is taller than Ian.' Who is the shortest?",
        "Ian",
        "Leo",
        "Max",
        "They are the same height",
    ),
    (
        "medium",
        "Read: 'The bakery sold out of bread by noon, so Nora bought muffins instead.' Why did Nora buy muffins?",
        "The bread was sold out",
        "She prefers muffins",
        "Muffins were cheaper",
        "The bakery was closed",
    ),
    (
        "medium",
        "Read: 'Jake forgot his umbrella at home. When he arrived at work, his clothes were soaking wet.' What was the weather probably like?",
        "Rainy",
        "Sunny and dry",
        "Hot and dry",
        "Cold and dry",
    ),
    (
        "medium",
        "Read: 'The old bridge was closed for repairs, so drivers took the ferry, which added an hour to their trip.' What made the trip longer?",
        "Taking the ferry",
        "Heavy traffic on the bridge",
        "A storm",
        "A broken car",
    ),
    (
        "hard",
        "Read: 'The museum is free on Mondays. On other days tickets cost $10, but children under 5 always enter free.' How much does a 30-year-old pay on a Tuesday?",
        "$10",
        "$0",
        "$5",
        "$20",
    ),
    (
        "hard",
        "Read: 'Dana, Elena, Chris and Ryan ran a race. Elena finished after Dana but before Chris, and Chris was not last.' Who finished last?",
        "Ryan",
        "Elena",
        "Chris",
        "Dana",
    ),
    (
        "hard",
        "Read: 'Despite the loud storm outside, the baby slept peacefully all night.' What does the word 'despite' suggest?",
        "The storm might have been expected to wake the baby",
        "The storm helped the baby sleep",
        "The baby was awake all night",
        "There was no storm",
    ),
    (
        "hard",
        "Read: 'Mia's train leaves at 3:40 p.m. The walk to the station takes 25 minutes.' What is the latest time Mia can leave home and still catch the train?",
        "3:15 p.m.",
        "3:25 p.m.",
        "3:05 p.m.",
        "4:05 p.m.",
    ),
]

LOGIC: list[K] = [
    (
        "easy",
        "All cats are animals. Tom is a cat. What can we conclude?",
        "Tom is an animal",
        "Tom is a dog",
        "All animals are cats",
        "Tom is not an animal",
    ),
    ("easy", "What number comes next: 2, 4, 6, 8, ...?", "10", "9", "12", "16"),
    (
        "easy",
        "Anna is older than Ben. Ben is older than Carl. Who is the oldest?",
        "Anna",
        "Ben",
        "Carl",
        "It cannot be known",
    ),
    (
        "easy",
        "Which one does not belong: apple, banana, carrot, grape?",
        "carrot",
        "apple",
        "banana",
        "grape",
    ),
    ("easy", "What letter comes next: A, C, E, G, ...?", "I", "H", "J", "K"),
    (
        "easy",
        "If every box in a room is red and this box is in the room, what color is this box?",
        "Red",
        "Blue",
        "Green",
        "It cannot be known",
    ),
    ("medium", "What number comes next: 1, 4, 9, 16, ...?", "25", "20", "24", "32"),
    (
        "medium",
        "No fish can walk. A trout is a fish. What follows?",
        "A trout cannot walk",
        "A trout can walk",
        "Some fish can walk",
        "A trout is not a fish",
    ),
    (
        "medium",
        "Box A is to the left of box B, and box B is to the left of box C. Where is box A compared with box C?",
        "To the left of C",
        "To the right of C",
        "On top of C",
        "In the same place as C",
    ),
    (
        "medium",
        "Five people each shake hands with every other person exactly once. How many handshakes happen?",
        "10",
        "5",
        "20",
        "25",
    ),
    ("medium", "What number comes next: 3, 6, 12, 24, ...?", "48", "30", "36", "27"),
    ("hard", "What number comes next: 1, 1, 2, 3, 5, 8, ...?", "13", "11", "12", "16"),
    (
        "hard",
        "No A are B, and all C are A. Which statement must be true?",
        "No C are B",
        "All B are C",
        "Some C are B",
        "All A are C",
    ),
    (
        "hard",
        "A pen and a notebook cost $3.20 together. The notebook costs $2 more than the pen. How much does the pen cost?",
        "$0.60",
        "$1.20",
        "$1.00",
        "$2.60",
    ),
    (
        "hard",
        "In a row of children, Sara is 4th from the left and 6th from the right. How many children are in the row?",
        "9",
        "10",
        "8",
        "11",
    ),
    (
        "hard",
        "The statement 'every box is red' is false. Which statement must be true?",
        "At least one box is not red",
        "No box is red",
        "Every box is blue",
        "Every box is red",
    ),
]

EVERYDAY: list[K] = [
    ("easy", "How many days are in a week?", "7", "5", "6", "10"),
    (
        "easy",
        "What color do you get by mixing blue and yellow paint?",
        "Green",
        "Purple",
        "Orange",
        "Brown",
    ),
    (
        "easy",
        "Which meal is usually eaten in the morning?",
        "Breakfast",
        "Dinner",
        "Supper",
        "Lunch",
    ),
    (
        "easy",
        "What do people usually use to cut paper?",
        "Scissors",
        "A spoon",
        "A pillow",
        "A cup",
    ),
    ("easy", "How many hours are in one day?", "24", "12", "48", "60"),
    (
        "easy",
        "What does a red traffic light tell drivers to do?",
        "Stop",
        "Go",
        "Speed up",
        "Turn left",
    ),
    (
        "easy",
        "Where is milk usually kept to stay cold?",
        "In the refrigerator",
        "In the oven",
        "In a cupboard",
        "On a windowsill",
    ),
    ("easy", "How many eggs are in a dozen?", "12", "10", "6", "20"),
    ("easy", "In which direction does the Sun rise?", "East", "West", "North", "South"),
    (
        "medium",
        "A pan of oil catches fire on the stove. What should you do first?",
        "Turn off the heat and cover the pan",
        "Pour water on it",
        "Carry it outside",
        "Fan the flames",
    ),
    (
        "medium",
        "At what temperature in degrees Fahrenheit does water freeze?",
        "32",
        "0",
        "100",
        "212",
    ),
    ("medium", "How many cents make one US dollar?", "100", "10", "50", "1000"),
    (
        "medium",
        "How many cards are in a standard deck of playing cards without jokers?",
        "52",
        "54",
        "48",
        "50",
    ),
    (
        "medium",
        "How many players does a soccer team have on the field at one time?",
        "11",
        "9",
        "10",
        "12",
    ),
    ("hard", "How many sides does a standard stop sign have?", "8", "6", "4", "5"),
    (
        "hard",
        "In a leap year, how many days are there in the whole year?",
        "366",
        "365",
        "364",
        "360",
    ),
]

HEALTH: list[K] = [
    ("easy", "Which of these foods is a vegetable?", "Broccoli", "Apple", "Bread", "Cheese"),
    (
        "easy",
        "How often do dentists usually advise brushing your teeth?",
        "Twice a day",
        "Once a week",
        "Once a month",
        "Once a year",
    ),
    (
        "easy",
        "Which drink is the best everyday choice for staying hydrated?",
        "Water",
        "Soda",
        "Energy drinks",
        "Milkshakes",
    ),
    (
        "easy",
        "What should you do before eating to avoid spreading germs?",
        "Wash your hands",
        "Run outside",
        "Brush your hair",
        "Watch TV",
    ),
    ("easy", "Which of these is a fruit?", "Orange", "Potato", "Lettuce", "Rice"),
    (
        "easy",
        "Which nutrient, found in meat, eggs and beans, helps build muscle?",
        "Protein",
        "Sugar",
        "Fiber",
        "Water",
    ),
    (
        "medium",
        "Which vitamin does the skin make when exposed to sunlight?",
        "Vitamin D",
        "Vitamin C",
        "Vitamin A",
        "Vitamin K",
    ),
    (
        "medium",
        "Oranges help prevent scurvy because they are rich in which vitamin?",
        "Vitamin C",
        "Vitamin D",
        "Vitamin B12",
        "Vitamin K",
    ),
    (
        "medium",
        "Which mineral is most important for strong bones and teeth?",
        "Calcium",
        "Sodium",
        "Iron",
        "Potassium",
    ),
    (
        "medium",
        "About how many hours of sleep per night are recommended for most adults?",
        "7 to 9 hours",
        "3 to 4 hours",
        "12 to 14 hours",
        "1 to 2 hours",
    ),
    (
        "medium",
        "What is a normal resting heart rate for most adults, in beats per minute?",
        "60 to 100",
        "20 to 40",
        "120 to 160",
        "180 to 220",
    ),
    (
        "medium",
        "What is the normal human body temperature, approximately?",
        "About 37 °C",
        "About 32 °C",
        "About 40 °C",
        "About 98 °C",
    ),
    (
        "medium",
        "Body mass index (BMI) is calculated from a person's weight and what?",
        "Height",
        "Age",
        "Waist size",
        "Heart rate",
    ),
    (
        "hard",
        "Iron in the diet is needed mainly to make what?",
        "Hemoglobin in red blood cells",
        "Tooth enamel",
        "Stomach acid",
        "Skin pigment",
    ),
    (
        "hard",
        "Which type of fat is generally considered the least healthy?",
        "Trans fat",
        "Monounsaturated fat",
        "Polyunsaturated fat",
        "Omega-3 fat",
    ),
    (
        "hard",
        "Which organ makes insulin?",
        "The pancreas",
        "The liver",
        "The kidneys",
        "The stomach",
    ),
]

ECONOMICS: list[K] = [
    (
        "easy",
        "If many people want a product but there is very little of it, what usually happens to its price?",
        "It goes up",
        "It goes down",
        "It drops to zero",
        "It never changes",
    ),
    (
        "easy",
        "What is the money a bank pays you for keeping your savings there called?",
        "Interest",
        "Tax",
        "Rent",
        "A fine",
    ),
    (
        "easy",
        "What is the money a worker is paid for their work called?",
        "A wage",
        "A tax",
        "A loan",
        "A refund",
    ),
    (
        "easy",
        "What do we call a person who buys goods or services for their own use?",
        "A consumer",
        "A producer",
        "A banker",
        "A landlord",
    ),
    (
        "easy",
        "What is a tax?",
        "Money people pay to the government",
        "Money a bank lends you",
        "A discount at a store",
        "A type of coin",
    ),
    (
        "medium",
        "What is inflation?",
        "A general rise in prices over time",
        "A fall in the number of jobs",
        "An increase in imports",
        "A rise in interest paid on savings",
    ),
    (
        "medium",
        "What does GDP stand for?",
        "Gross Domestic Product",
        "General Domestic Price",
        "Gross Daily Profit",
        "Government Debt Payment",
    ),
    (
        "medium",
        "What are goods that a country sells to other countries called?",
        "Exports",
        "Imports",
        "Tariffs",
        "Subsidies",
    ),
    (
        "medium",
        "What is a tax on imported goods called?",
        "A tariff",
        "A dividend",
        "A subsidy",
        "A mortgage",
    ),
    (
        "medium",
        "What is the opportunity cost of a choice?",
        "The value of the best alternative given up",
        "The total money spent",
        "The tax paid on it",
        "The profit it earns",
    ),
    (
        "medium",
        "What is a loan used to buy a house usually called?",
        "A mortgage",
        "A pension",
        "A dividend",
        "A tariff",
    ),
    (
        "medium",
        "What does a company's profit equal?",
        "Revenue minus costs",
        "Revenue plus costs",
        "Costs minus revenue",
        "Revenue times costs",
    ),
    (
        "hard",
        "What do central banks usually do to fight high inflation?",
        "Raise interest rates",
        "Lower interest rates",
        "Print more money",
        "Remove all taxes",
    ),
    (
        "hard",
        "In economics, what is a monopoly?",
        "A market with only one seller",
        "A market with many sellers",
        "A market with one buyer",
        "A tax on sellers",
    ),
    (
        "hard",
        "The price of a good rises and people buy less of it. Which idea does this show?",
        "The law of demand",
        "The law of supply",
        "Inflation",
        "Comparative advantage",
    ),
    (
        "hard",
        "What is a share of ownership in a company called?",
        "A stock",
        "A bond",
        "A loan",
        "A tariff",
    ),
]

KNOWLEDGE: list[tuple[str, str, list[K]]] = [
    ("physics", "phys", PHYSICS),
    ("chemistry", "chem", CHEMISTRY),
    ("biology", "bio", BIOLOGY),
    ("earth_science", "earth", EARTH_SCIENCE),
    ("geography", "geog", GEOGRAPHY),
    ("world_history", "hist", WORLD_HISTORY),
    ("vocabulary", "vocab", VOCABULARY),
    ("grammar", "gram", GRAMMAR),
    ("reading_comprehension", "read", READING),
    ("logical_reasoning", "logic", LOGIC),
    ("everyday_knowledge", "every", EVERYDAY),
    ("health_nutrition", "health", HEALTH),
    ("economics", "econ", ECONOMICS),
]


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def subject_items() -> list[tuple[str, str, list[tuple[str, Item]]]]:
    """Every subject as (subject, id prefix, [(difficulty, item), ...]), in output order."""
    subjects = []
    for subject, prefix, spec in COMPUTED:
        subjects.append((subject, prefix, computed_items(spec, Random(_seed(subject)))))
    subjects.append(("python_code", "py", python_items()))
    for subject, prefix, bank in KNOWLEDGE:
        items = [(d, (q, correct, [w1, w2, w3])) for d, q, correct, w1, w2, w3 in bank]
        subjects.append((subject, prefix, items))
    return subjects


def build() -> list[dict]:
    """All benchmark rows, deterministically; the correct letter is balanced per subject."""
    rows: list[dict] = []
    for s_index, (subject, prefix, items) in enumerate(subject_items()):
        rng = Random(_seed(subject + "-options"))
        positions = [(k + s_index) % 4 for k in range(len(items))]
        rng.shuffle(positions)
        for k, ((difficulty, (question, correct, wrong)), pos) in enumerate(
            zip(items, positions, strict=True)
        ):
            assert difficulty in DIFFICULTIES, difficulty
            assert len(wrong) == 3 and correct not in wrong and len(set(wrong)) == 3, question
            options = list(wrong)
            rng.shuffle(options)
            options.insert(pos, correct)
            row = {
                "instance_id": f"{prefix}-{k + 1:03d}",
                "question": question,
                "options": options,
                "answer": LETTERS[pos],
                "subject": subject,
                "difficulty": difficulty,
            }
            rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    """The JSONL text for ``rows`` (one compact JSON object per line, UTF-8, LF endings)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> None:
    rows = build()
    OUT_PATH.write_text(render(rows), encoding="utf-8", newline="\n")
    subjects = sorted({row["subject"] for row in rows})
    print(f"wrote {len(rows)} questions over {len(subjects)} subjects to {OUT_PATH}")


if __name__ == "__main__":
    main()
