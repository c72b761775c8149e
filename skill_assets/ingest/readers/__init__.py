"""Harness readers: one module per results format, registered in :data:`READERS`.

A new harness format is one module here (a class satisfying
:class:`~skill_assets.ingest.readers.base.Reader`) and one line in ``_REGISTERED``. A reader
outside the package is named in the registry by its import path, ``format:
"package.module:ReaderClass"``; it is imported in the ingest layer wherever results are read
(so also in a Dagster run worker's own process: the module must be importable there too,
e.g. through PYTHONPATH).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from skill_assets.core.registry import RegistryError
from skill_assets.ingest.readers import helm, inspect_ai, lm_eval
from skill_assets.ingest.readers.base import NOT_MINE, READER_MEMBERS, Reader

# The order breaks ties in detection (see base.BY_NAME).
_REGISTERED: tuple[Reader, ...] = (
    lm_eval.READER,
    inspect_ai.READER,
    helm.READER,
)
READERS: dict[str, Reader] = {r.name: r for r in _REGISTERED}
GENERIC_CONTAINERS = ("jsonl", "csv", "parquet")
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _fail(where: str, fmt: str, msg: str) -> RegistryError:
    return RegistryError(f"{where}: format {fmt!r}: {msg}")


def _load_plugin(fmt: str, where: str) -> Reader:
    """The reader an import path names (a class taking no arguments, or an instance)."""
    module_name, _, attr = fmt.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as e:  # the user's module: any failure while importing it is theirs
        raise _fail(
            where,
            fmt,
            f"cannot import module {module_name!r} ({type(e).__name__}: {e}); make it "
            "importable (installed, or on PYTHONPATH for every process that runs assets)",
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _fail(where, fmt, f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as e:
            raise _fail(
                where, fmt, f"{attr} cannot be created without arguments ({type(e).__name__}: {e})"
            ) from None
    if not isinstance(obj, Reader):
        missing = [m for m in READER_MEMBERS if not hasattr(obj, m)]
        raise _fail(
            where,
            fmt,
            f"{attr} is not a Reader (missing {', '.join(sorted(missing))}; see "
            "skill_assets.ingest.readers.base.Reader)",
        )
    return obj


def get_reader(fmt: str | None, where: str) -> Reader | None:
    """The reader of ``fmt``: None for generic tables (``None`` is not resolved here: see
    :func:`detect`), a registered reader by name, or a plugged-in one by import path.

    ``where`` prefixes every error (the registry key, or the results path).
    """
    if fmt is None or fmt == "generic" or fmt in GENERIC_CONTAINERS:
        return None
    if fmt in READERS:
        return READERS[fmt]
    if _IMPORT_PATH.match(fmt):
        return _load_plugin(fmt, where)
    raise RegistryError(
        f"{where}: unknown results format {fmt!r}; expected one of "
        f"{', '.join(('generic', *READERS, *GENERIC_CONTAINERS))}, or a reader's import "
        "path 'package.module:ReaderClass'"
    )


def detect(path: Path) -> Reader | None:
    """The registered reader that recognises ``path`` most surely; None: a generic table.

    A folder no reader recognises is an error (a generic results file is one file).
    """
    best, best_level = None, NOT_MINE
    for reader in _REGISTERED:
        level = reader.recognise(path)
        if level > best_level:
            best, best_level = reader, level
    if best is None and path.is_dir():
        layouts = [r.layout for r in _REGISTERED]
        listed = ", ".join(layouts[:-1]) + f" or {layouts[-1]}" if len(layouts) > 1 else layouts[0]
        raise RegistryError(f"{path}: a folder, but it holds no {listed}; set 'format'")
    return best
