"""Helpers shared by the readers: typed access to parsed JSON with errors that name the
file and the key path, score and id coercion, option letters, task matching."""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from skill_assets.core.options import ImportOptions
from skill_assets.core.registry import RegistryError


def fail(where: str, msg: str) -> NoReturn:
    """Raise the error every reader raises: ``<where>: <msg>``."""
    raise RegistryError(f"{where}: {msg}")


def subkey(where: str, suffix: str) -> str:
    """Extend the key path in a location label: ``f: key 'a'`` + ``b`` → ``f: key 'a.b'``."""
    sep = "" if suffix.startswith("[") else "."
    if where.endswith("'"):
        return f"{where[:-1]}{sep}{suffix}'"
    return f"{where}: key '{suffix}'"


def kind_of(v: Any) -> str:
    """What a JSON value is, in words (for "expected X, got Y")."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def short(v: Any, n: int = 60) -> str:
    """A value's repr cut to ``n`` characters."""
    s = repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def decode(data: bytes, where: str) -> str:
    """UTF-8 text, or an error naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RegistryError(f"{where}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def json_text(text: str, where: str) -> Any:
    """Parsed JSON, or an error naming the line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RegistryError(
            f"{where}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
        ) from None
    except RecursionError:
        raise RegistryError(f"{where}: JSON nested too deeply") from None


def read_json_file(path: Path) -> Any:
    """A whole JSON file, parsed."""
    if not path.exists():
        raise RegistryError(f"{path}: file not found")
    data = path.read_bytes()
    if not data.strip():
        raise RegistryError(f"{path}: file is empty")
    return json_text(decode(data, str(path)), str(path))


def as_object(v: Any, where: str, what: str = "a JSON object") -> dict:
    """``v`` when it is a JSON object, else an error saying what was expected."""
    if not isinstance(v, dict):
        fail(where, f"expected {what}, got {kind_of(v)}")
    return v


def as_list(v: Any, where: str, what: str = "a list") -> list:
    """``v`` when it is a JSON list, else an error saying what was expected."""
    if not isinstance(v, list):
        fail(where, f"expected {what}, got {kind_of(v)}")
    return v


def scalar_id(v: Any, where: str) -> str:
    """An instance id from a JSON string or integer (``3.0`` → ``"3"``)."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)) or str(v).strip() == "":
        fail(where, f"expected a non-empty string or integer id, got {short(v)}")
    if isinstance(v, float):
        if not math.isfinite(v):
            fail(where, f"expected a string or integer id, got {v!r}")
        if v.is_integer():
            v = int(v)
    return str(v)


def finite(v: Any) -> float | None:
    """A finite float from a JSON number (not a bool), else None (huge ints included)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def score01(v: Any, where: str, hint: str = "") -> float:
    """A per-sample score in [0, 1] from a bool or a number."""
    if isinstance(v, bool):
        return float(v)
    f = finite(v)
    if f is not None and 0.0 <= f <= 1.0:
        return f
    if isinstance(v, (list, dict)):
        fail(where, f"expected a per-sample score in [0, 1], got {kind_of(v)}{hint}")
    fail(where, f"expected a per-sample score in [0, 1], got {short(v)}{hint}")


def option_letters(n: int) -> list[str]:
    """A..Z, then AA, AB, … (the labels the rest of the package uses)."""
    out = []
    for i in range(n):
        label, j = "", i
        while True:
            label = chr(ord("A") + j % 26) + label
            j = j // 26 - 1
            if j < 0:
                break
        out.append(label)
    return out


def answer_letter(answer: str, options: list[str], index_first: bool) -> str:
    """Map a multiple-choice gold (index, letter or option text) to a letter; else as is."""
    letters = option_letters(len(options))
    a = answer.strip()
    index = int(a) if re.fullmatch(r"[0-9]{1,6}", a) else None
    if index_first and index is not None and index < len(options):
        return letters[index]
    m = re.fullmatch(r"\(?\s*([A-Za-z]{1,2})\s*[.)]?", a)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    for letter, opt in zip(letters, options, strict=True):
        if a == opt.strip():
            return letter
    if index is not None and index < len(options):
        return letters[index]
    return answer


def wanted_task(opts: ImportOptions, benchmark: str) -> str | None:
    """The task ``options.task`` names for ``benchmark`` (None: the benchmark's name)."""
    if isinstance(opts.task, dict):
        return opts.task.get(benchmark)
    return opts.task


def task_matches(
    task: str | None, benchmark: str, opts: ImportOptions, aliases: tuple[str, ...] = ()
) -> bool:
    """Does a source named `task` (with `aliases`) feed `benchmark`? None = unnamed: yes."""
    if task is None:
        return True
    names = {task, *aliases}
    wanted = wanted_task(opts, benchmark)
    return (wanted in names) if wanted is not None else (benchmark in names)


def no_source(
    path: Path, what: str, benchmark: str, opts: ImportOptions, found: str, names: list[str]
) -> NoReturn:
    """The error when ``path`` holds nothing for ``benchmark``: what it holds instead
    (``found`` names them, e.g. ``"tasks"``) and the option that picks one."""
    raise RegistryError(
        f"{path}: no {what} {wanted_task(opts, benchmark) or benchmark!r}; "
        f"{found} found: {names}; set options.task"
    )


def not_present(
    where: str | Path, option: str, value: Any, what: str, present: str, after: str = ""
) -> NoReturn:
    """The error when ``options.<option>`` names a ``value`` the file does not hold:
    ``<where>: no <what> <value> (options.<option>)<after>; <present>``."""
    raise RegistryError(f"{where}: no {what} {value!r} (options.{option}){after}; {present}")


@contextmanager
def guard(path: Path, fmt: str) -> Iterator[None]:
    """Last line of defence: any unexpected failure becomes a RegistryError naming the file."""
    try:
        yield
    except RegistryError:
        raise
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise RegistryError(
            f"{path}: cannot read the {fmt} file ({type(e).__name__}: {e})"
        ) from None
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ) as e:
        raise RegistryError(
            f"{path}: unexpected structure for a {fmt} file ({type(e).__name__}: {e})"
        ) from None


def peek(path: Path, n: int = 1 << 16) -> bytes:
    """The first ``n`` bytes of a file (format detection reads no more)."""
    with path.open("rb") as fh:
        return fh.read(n)


def choices_list(v: Any, where: str) -> list[str] | None:
    """Options as strings from a list (or ARC's ``{"text": [...], "label": [...]}``)."""
    if isinstance(v, dict) and isinstance(
        v.get("text"), list
    ):  # ARC: {"text": [...], "label": [...]}
        v = v["text"]
    if not isinstance(v, list) or not v:
        return None
    if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v):
        fail(where, "choices must be a list of strings")
    return [str(x) for x in v]


def load_json_quietly(path: Path) -> Any:
    """A JSON file's value, or None when it is not UTF-8 JSON (detection: never raises)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
