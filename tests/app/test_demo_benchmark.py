"""Tests for the demo benchmark (examples/live/benchmark/questions.jsonl and its builder).

The gold answers of computed subjects are re-derived here independently of the builder: each
question template is parsed and solved with its own code (unit sizes, enumeration of outcomes,
``datetime``, running the Python snippet...), so a bug in a generator cannot hide behind the
"rebuild reproduces the file" check.
"""

from __future__ import annotations

import calendar
import collections
import contextlib
import datetime as dt
import importlib.util
import io
import itertools
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "examples" / "live" / "benchmark"
QUESTIONS = BENCH_DIR / "questions.jsonl"
BUILDER = BENCH_DIR / "build_questions.py"

KEYS = {"instance_id", "question", "options", "answer", "subject", "difficulty"}
COMPUTED_SUBJECTS = {
    "arithmetic",
    "percentages",
    "fractions",
    "algebra",
    "geometry",
    "unit_conversion",
    "probability",
    "number_theory",
    "calendar_dates",
    "python_code",
    "string_manipulation",
}


def _load_builder():
    spec = importlib.util.spec_from_file_location("demo_build_questions", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    return _load_builder()


@pytest.fixture(scope="module")
def text() -> str:
    assert QUESTIONS.is_file(), f"missing {QUESTIONS}; run python {BUILDER}"
    return QUESTIONS.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(text) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def gold(row: dict) -> str:
    return row["options"]["ABCD".index(row["answer"])]


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


def test_file_exists_and_has_enough_rows(text, rows):
    assert text.endswith("\n") and "\r" not in text
    assert len(rows) >= 300


def test_rows_have_exactly_the_expected_keys(rows):
    for row in rows:
        assert set(row) == KEYS, row
        assert all(isinstance(row[k], str) for k in KEYS - {"options"}), row
        assert row["difficulty"] in {"easy", "medium", "hard"}, row


def test_instance_ids_and_questions_are_unique(rows):
    ids = [r["instance_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+-\d{3}", i) for i in ids)
    questions = [r["question"] for r in rows]
    assert len(questions) == len(set(questions))


def test_answers_and_options(rows):
    for row in rows:
        assert row["answer"] in {"A", "B", "C", "D"}, row
        options = row["options"]
        assert isinstance(options, list) and len(options) == 4, row
        assert all(isinstance(o, str) and o.strip() for o in options), row
        assert len(set(options)) == 4, row


def test_subjects_and_difficulties(rows):
    counts = collections.Counter(r["subject"] for r in rows)
    assert len(counts) >= 15
    for subject, n in counts.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", subject), subject
        assert n >= 12, (subject, n)
    difficulties = collections.Counter(r["difficulty"] for r in rows)
    assert set(difficulties) == {"easy", "medium", "hard"}
    assert difficulties["easy"] >= difficulties["hard"]


def test_answer_letters_are_balanced(rows):
    counts = collections.Counter(r["answer"] for r in rows)
    for letter in "ABCD":
        share = counts[letter] / len(rows)
        assert 0.15 <= share <= 0.35, (letter, share)


def test_questions_are_short(rows):
    for row in rows:
        if row["subject"] == "python_code":
            assert row["question"].count("\n") <= 6, row
        else:
            assert "\n" not in row["question"], row
            assert len(row["question"]) <= 260, row


# --------------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------------


def test_rebuild_reproduces_the_file_exactly(builder, text, rows):
    built = builder.build()
    assert built == rows
    assert builder.render(built) == text
    assert builder.render(builder.build()) == text  # a second run gives the same bytes


def test_knowledge_rows_match_their_hand_written_bank(builder, rows):
    by_subject = collections.defaultdict(list)
    for row in rows:
        by_subject[row["subject"]].append(row)
    for subject, _prefix, bank in builder.KNOWLEDGE:
        assert len(by_subject[subject]) == len(bank)
        for row, (difficulty, question, correct, *wrong) in zip(
            by_subject[subject], bank, strict=True
        ):
            assert row["question"] == question
            assert row["difficulty"] == difficulty
            assert gold(row) == correct
            assert sorted(row["options"]) == sorted([correct, *wrong])


# --------------------------------------------------------------------------------------------
# Independent re-derivation of computed gold answers
# --------------------------------------------------------------------------------------------

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTH_NUMBER = {name: i for i, name in enumerate(calendar.month_name) if name}
VOWELS = set("aeiou")

# Size of each unit in a base unit of its quantity (meter, gram, liter, second, square meter).
UNIT_SIZE = {
    "millimeters": ("length", Fraction(1, 1000)),
    "centimeters": ("length", Fraction(1, 100)),
    "meters": ("length", Fraction(1)),
    "kilometers": ("length", Fraction(1000)),
    "inches": ("length", Fraction(254, 10000)),
    "feet": ("length", Fraction(3048, 10000)),
    "yards": ("length", Fraction(9144, 10000)),
    "grams": ("mass", Fraction(1)),
    "kilograms": ("mass", Fraction(1000)),
    "milliliters": ("volume", Fraction(1, 1000)),
    "liters": ("volume", Fraction(1)),
    "seconds": ("time", Fraction(1)),
    "minutes": ("time", Fraction(60)),
    "hours": ("time", Fraction(3600)),
    "days": ("time", Fraction(86400)),
    "weeks": ("time", Fraction(604800)),
    "square centimeters": ("area", Fraction(1, 10000)),
    "square meters": ("area", Fraction(1)),
}
POLYGON_SIDES = {
    "triangle": 3,
    "pentagon": 5,
    "hexagon": 6,
    "heptagon": 7,
    "octagon": 8,
    "nonagon": 9,
    "decagon": 10,
}
DIE_EVENTS = {
    "an even number": {2, 4, 6},
    "an odd number": {1, 3, 5},
    "a multiple of 3": {3, 6},
    "a prime number": {2, 3, 5},
}


def value_of(option: str) -> Fraction:
    """The leading number of an option: '$93.75' -> 93.75, '64π cm²' -> 64, '3/4' -> 3/4."""
    m = re.match(r"^\$?(-?\d+(?:\.\d+)?(?:/\d+)?)", option)
    assert m, option
    return Fraction(m.group(1))


def py_eval(expr: str, x: int | None = None):
    """Evaluate a question's maths expression (3x, 2(x + 1), x², ×, ÷) with Python."""
    expr = expr.replace("×", "*").replace("÷", "/").replace("²", "**2")
    expr = re.sub(r"(\d)\s*(x|\()", r"\1*\2", expr)
    assert re.fullmatch(r"[\dx+\-*/() ]+", expr), expr
    return Fraction(eval(expr, {}, {"x": x}))  # noqa: S307 - checked to be plain arithmetic


def prob_fraction(favourable: int, total: int) -> Fraction:
    return Fraction(favourable, total)


def is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def run_code(code: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(code, {})  # noqa: S102 - the benchmark's own snippets
    return buf.getvalue().rstrip("\n")


def parse_date(text: str, year: int) -> dt.date:
    month, day = text.split()
    return dt.date(year, MONTH_NUMBER[month], int(day))


def expected(row: dict):
    """("value", Fraction) or ("text", str) for the correct option; None if no template fits."""
    q, subject = row["question"], row["subject"]
    options = row["options"]

    def m(pattern: str):
        return re.fullmatch(pattern, q)

    if subject == "arithmetic" and (g := m(r"What is ([\d +\-×÷()]+)\?")):
        return "value", py_eval(g.group(1))

    if subject == "percentages":
        if g := m(r"What is (\d+)% of (\d+)\?"):
            return "value", Fraction(int(g.group(1)) * int(g.group(2)), 100)
        if g := m(
            r"A [a-z ]+ costs \$(\d+) and is on sale for (\d+)% off\. What is the sale price\?"
        ):
            price, pct = int(g.group(1)), int(g.group(2))
            return "value", price - Fraction(price * pct, 100)
        if g := m(r"What percent of (\d+) is (\d+)\?"):
            return "value", Fraction(int(g.group(2)), int(g.group(1))) * 100
        if g := m(r"A price rises from \$(\d+) to \$(\d+)\. By what percent did it increase\?"):
            a, b = int(g.group(1)), int(g.group(2))
            return "value", Fraction(b - a, a) * 100
        if g := m(
            r"A \$(\d+) item goes up by (\d+)% and then down by (\d+)%\. What is the final price\?"
        ):
            a, up, down = (int(v) for v in g.groups())
            return "value", a * (1 + Fraction(up, 100)) * (1 - Fraction(down, 100))
        if g := m(r"After a (\d+)% discount, a coat costs \$(\d+)\. What was the original price\?"):
            pct, sale = int(g.group(1)), int(g.group(2))
            return "value", sale / (1 - Fraction(pct, 100))

    if subject == "fractions":
        if g := m(r"What is (\d+)/(\d+) ([+\-×÷]) (\d+)/(\d+)\?"):
            left = Fraction(int(g.group(1)), int(g.group(2)))
            right = Fraction(int(g.group(4)), int(g.group(5)))
            op = g.group(3)
            result = {
                "+": left + right,
                "-": left - right,
                "×": left * right,
                "÷": left / right,
            }[op]
            return "value", result
        if g := m(r"Simplify (\d+)/(\d+)\."):
            value = Fraction(int(g.group(1)), int(g.group(2)))
            return "text", f"{value.numerator}/{value.denominator}"
        if g := m(r"What is (\d+)/(\d+) of (\d+)\?"):
            return "value", Fraction(int(g.group(1)), int(g.group(2))) * int(g.group(3))

    if subject == "algebra":
        if g := m(r"Solve for x: (.+) = (.+)\."):
            lhs, rhs = g.groups()
            solutions = [o for o in options if py_eval(lhs, int(o)) == py_eval(rhs, int(o))]
            assert len(solutions) == 1, (row, solutions)
            return "value", Fraction(solutions[0])
        if g := m(r"If y = (.+), what is y when x = (\d+)\?"):
            return "value", py_eval(g.group(1), int(g.group(2)))
        if g := m(r"If x = (\d+), what is (.+)\?"):
            return "value", py_eval(g.group(2), int(g.group(1)))

    if subject == "geometry":
        if g := m(r"What is the area of a rectangle (\d+) cm long and (\d+) cm wide\?"):
            return "value", Fraction(int(g.group(1)) * int(g.group(2)))
        if g := m(r"What is the perimeter of a rectangle (\d+) cm long and (\d+) cm wide\?"):
            return "value", Fraction(2 * (int(g.group(1)) + int(g.group(2))))
        if g := m(r"What is the perimeter of a square with sides of (\d+) cm\?"):
            return "value", Fraction(4 * int(g.group(1)))
        if g := m(r"Two angles of a triangle are (\d+)° and (\d+)°\. What is the third angle\?"):
            return "value", Fraction(180 - int(g.group(1)) - int(g.group(2)))
        if g := m(r"What is the area of a triangle with base (\d+) cm and height (\d+) cm\?"):
            return "value", Fraction(int(g.group(1)) * int(g.group(2)), 2)
        if g := m(r"What is the area of a circle with radius (\d+) cm, in terms of π\?"):
            assert all(o.endswith("π cm²") for o in options), row
            return "value", Fraction(int(g.group(1)) ** 2)
        if g := m(r"What is the circumference of a circle with diameter (\d+) cm, in terms of π\?"):
            assert all(o.endswith("π cm") for o in options), row
            return "value", Fraction(int(g.group(1)))
        if g := m(
            r"A right triangle has legs of (\d+) cm and (\d+) cm\. How long is the hypotenuse\?"
        ):
            a, b = int(g.group(1)), int(g.group(2))
            c = math.isqrt(a * a + b * b)
            assert c * c == a * a + b * b
            return "value", Fraction(c)
        if g := m(r"What is the volume of a cube with edges of (\d+) cm\?"):
            return "value", Fraction(int(g.group(1)) ** 3)
        if g := m(r"What is the sum of the interior angles of a ([a-z]+)\?"):
            return "value", Fraction((POLYGON_SIDES[g.group(1)] - 2) * 180)

    if subject == "unit_conversion":
        if g := m(r"How many ([a-z ]+) are in (\d+) ([a-z ]+)\?"):
            dst, amount, src = g.group(1), int(g.group(2)), g.group(3)
            (q_dst, size_dst), (q_src, size_src) = UNIT_SIZE[dst], UNIT_SIZE[src]
            assert q_dst == q_src, row
            return "value", amount * size_src / size_dst
        if g := m(r"A car travels at (\d+) km/h\. What is its speed in meters per second\?"):
            return "value", Fraction(int(g.group(1)) * 1000, 3600)
        if g := m(r"What is (\d+) °C in degrees Fahrenheit\?"):
            return "value", Fraction(int(g.group(1)) * 9, 5) + 32

    if subject == "probability":
        die = range(1, 7)
        if g := m(
            r"A fair six-sided die is rolled once\. What is the probability of rolling a (\d)\?"
        ):
            k = int(g.group(1))
            return "value", prob_fraction(sum(x == k for x in die), 6)
        if g := m(r"A fair six-sided die is rolled\. What is the probability of rolling (.+)\?"):
            name = g.group(1)
            if gg := re.fullmatch(r"a number (greater|less) than (\d)", name):
                k = int(gg.group(2))
                event = {x for x in die if (x > k if gg.group(1) == "greater" else x < k)}
            else:
                event = DIE_EVENTS[name]
            return "value", prob_fraction(len(event), 6)
        if g := m(
            r"A bag holds (\d+) red and (\d+) blue marbles\. One marble is drawn at random\. "
            r"What is the probability that it is red\?"
        ):
            r, b = int(g.group(1)), int(g.group(2))
            return "value", prob_fraction(r, r + b)
        if g := m(
            r"A spinner has (\d+) equal sections numbered 1 to (\d+)\. "
            r"What is the probability of landing on (\d+)\?"
        ):
            return "value", prob_fraction(1, int(g.group(1)))
        if g := m(r"Two fair coins are flipped\. What is the probability that (.+)\?"):
            outcomes = list(itertools.product("HT", repeat=2))
            test = {
                "both land heads": lambda o: o.count("H") == 2,
                "both land tails": lambda o: o.count("T") == 2,
                "one lands heads and the other tails": lambda o: o.count("H") == 1,
                "at least one lands heads": lambda o: o.count("H") >= 1,
            }[g.group(1)]
            return "value", prob_fraction(sum(map(test, outcomes)), 4)
        if g := m(
            r"A box has (\d+) red, (\d+) blue and (\d+) green balls\. One is picked at random\. "
            r"What is the probability that it is not red\?"
        ):
            r, b, gr = (int(v) for v in g.groups())
            return "value", prob_fraction(b + gr, r + b + gr)
        if g := m(
            r"Two fair six-sided dice are rolled\. What is the probability that the total is (\d+)\?"
        ):
            s = int(g.group(1))
            return "value", prob_fraction(sum(a + b == s for a in die for b in die), 36)
        if g := m(
            r"A bag has (\d+) red and (\d+) blue marbles\. Two are drawn without replacement\. "
            r"What is the probability that both are red\?"
        ):
            r, b = int(g.group(1)), int(g.group(2))
            return "value", Fraction(r, r + b) * Fraction(r - 1, r + b - 1)
        if g := m(
            r"A fair coin is flipped (\d+) times\. What is the probability of at least one head\?"
        ):
            n = int(g.group(1))
            return "value", 1 - Fraction(1, 2**n)
        if g := m(
            r"A fair coin is flipped (\d+) times\. What is the probability of exactly two heads\?"
        ):
            n = int(g.group(1))
            return "value", Fraction(math.comb(n, 2), 2**n)

    if subject == "number_theory":
        if g := m(r"What is the remainder when (\d+) is divided by (\d+)\?"):
            return "value", Fraction(int(g.group(1)) % int(g.group(2)))
        if g := m(r"Which of these numbers is prime: (\d+), (\d+), (\d+) or (\d+)\?"):
            listed = sorted(g.groups())
            assert listed == sorted(options), row
            primes = [o for o in options if is_prime(int(o))]
            assert len(primes) == 1, row
            return "text", primes[0]
        if g := m(r"What is the greatest common divisor of (\d+) and (\d+)\?"):
            a, b = int(g.group(1)), int(g.group(2))
            return "value", Fraction(max(d for d in range(1, min(a, b) + 1) if a % d == b % d == 0))
        if g := m(r"What is the least common multiple of (\d+) and (\d+)\?"):
            a, b = int(g.group(1)), int(g.group(2))
            return "value", Fraction(
                next(k for k in range(max(a, b), a * b + 1) if k % a == k % b == 0)
            )
        if g := m(r"How many positive divisors does (\d+) have\?"):
            n = int(g.group(1))
            return "value", Fraction(sum(n % d == 0 for d in range(1, n + 1)))
        if g := m(r"What is (\d+) written in binary\?"):
            return "text", bin(int(g.group(1)))[2:]
        if g := m(r"What is the binary number ([01]+) in decimal\?"):
            return "value", Fraction(int(g.group(1), 2))
        if g := m(r"What is (\d+) written in hexadecimal\?"):
            return "text", hex(int(g.group(1)))[2:].upper()
        if g := m(r"What is the largest prime factor of (\d+)\?"):
            n = int(g.group(1))
            return "value", Fraction(max(p for p in range(2, n + 1) if n % p == 0 and is_prime(p)))

    if subject == "calendar_dates":
        if g := m(
            r"If today is ([A-Za-z]+), what day of the week will it be (?:in (\d+) days|(\d+) days from now)\?"
        ):
            k = int(g.group(2) or g.group(3))
            return "text", DAYS[(DAYS.index(g.group(1)) + k) % 7]
        if g := m(r"How many days are in ([A-Za-z]+) (\d{4})\?"):
            return "value", Fraction(
                calendar.monthrange(int(g.group(2)), MONTH_NUMBER[g.group(1)])[1]
            )
        if g := m(r"What date is (\d+) days after ([A-Za-z]+ \d+), (\d{4})\?"):
            end = parse_date(g.group(2), int(g.group(3))) + dt.timedelta(days=int(g.group(1)))
            assert end.year == int(g.group(3))
            return "text", f"{calendar.month_name[end.month]} {end.day}"
        if g := m(r"How many days are there from ([A-Za-z]+ \d+) to ([A-Za-z]+ \d+), (\d{4})\?"):
            year = int(g.group(3))
            return "value", Fraction(
                (parse_date(g.group(2), year) - parse_date(g.group(1), year)).days
            )
        if g := m(r"What day of the week was ([A-Za-z]+ \d+), (\d{4})\?"):
            return "text", parse_date(g.group(1), int(g.group(2))).strftime("%A")
        if g := m(r"Which of these years is a leap year: (\d{4}), (\d{4}), (\d{4}) or (\d{4})\?"):
            assert sorted(g.groups()) == sorted(options), row
            leap = [y for y in options if calendar.isleap(int(y))]
            assert len(leap) == 1, row
            return "text", leap[0]

    if subject == "python_code":
        prompt, _, code = q.partition("\n")
        assert prompt == "What does this Python code print?" and code, row
        return "text", run_code(code)

    if subject == "string_manipulation":
        if g := m(r"What is the word '([a-z]+)' spelled backwards\?"):
            return "text", g.group(1)[::-1]
        if g := m(r"How many letters are in the word '([a-z]+)'\?"):
            return "value", Fraction(len(g.group(1)))
        if g := m(r"What is the last letter of the word '([a-z]+)'\?"):
            return "text", g.group(1)[-1]
        if g := m(r"How many times does the letter '([a-z])' appear in '([a-z]+)'\?"):
            return "value", Fraction(g.group(2).count(g.group(1)))
        if g := m(r"What is '([a-z]+)' written in all capital letters\?"):
            return "text", g.group(1).upper()
        if g := m(
            r"Which word comes first in alphabetical order: ([a-z]+), ([a-z]+), ([a-z]+) or ([a-z]+)\?"
        ):
            assert sorted(g.groups()) == sorted(options), row
            return "text", sorted(g.groups())[0]
        if g := m(r"What do you get if you remove every vowel \(a, e, i, o, u\) from '([a-z]+)'\?"):
            return "text", "".join(c for c in g.group(1) if c not in VOWELS)
        if g := m(r"What are the letters of '([a-z]+)' arranged in alphabetical order\?"):
            return "text", "".join(sorted(g.group(1)))
        if g := m(r"How many vowels \(a, e, i, o, u\) are in the word '([a-z]+)'\?"):
            return "value", Fraction(sum(c in VOWELS for c in g.group(1)))

    return None


def test_every_computed_subject_is_present(rows):
    subjects = {r["subject"] for r in rows}
    assert COMPUTED_SUBJECTS <= subjects


def test_computed_gold_answers_are_independently_verified(rows):
    checked = collections.Counter()
    for row in rows:
        if row["subject"] not in COMPUTED_SUBJECTS:
            continue
        exp = expected(row)
        assert exp is not None, (
            f"no independent check matches {row['instance_id']}: {row['question']!r}"
        )
        kind, value = exp
        if kind == "text":
            assert gold(row) == value, row
        else:
            assert value_of(gold(row)) == value, (row, value)
            # No wrong option may have the same value written differently (e.g. 1/2 and 0.5).
            values = [value_of(o) for o in row["options"]]
            assert len(set(values)) == 4, row
        checked[row["subject"]] += 1
    assert set(checked) == COMPUTED_SUBJECTS
    assert all(n >= 12 for n in checked.values()), checked


def test_fraction_answers_are_in_lowest_terms(rows):
    for row in rows:
        if row["subject"] in {"fractions", "probability"}:
            for option in row["options"]:
                assert re.fullmatch(r"\d+(/\d+)?", option), row
                value = Fraction(option)
                expected_text = str(value.numerator) if value.denominator == 1 else str(value)
                assert option == expected_text, row


def test_probabilities_are_between_zero_and_one(rows):
    for row in rows:
        if row["subject"] == "probability":
            assert all(0 < Fraction(o) <= 1 for o in row["options"]), row
