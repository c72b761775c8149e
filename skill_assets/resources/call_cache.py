"""Persistent, content-addressed cache of LLM calls (SQLite, WAL mode).

One row per successful call, committed the moment the call returns, so a re-run, a
crash-resume (even after SIGKILL) or a second asset that needs the same call pays nothing.
Several processes may share one file: SQLite's WAL mode lets readers and one writer work
at once, and every write is a short transaction retried under ``busy_timeout``.

Failed calls are never stored as results: they go to a separate ``failures`` table that
is only used for reporting, so a later run retries them.

The cache key is the SHA-256 of a canonical JSON of (provider, model, base URL, messages,
parameters, output schema). It never contains an API key; base URLs are stripped of
user-info and query strings before they are hashed or stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

Purpose = Literal["annotate", "evaluate", "verify", "probe", "judge"]
PURPOSES: tuple[str, ...] = ("annotate", "evaluate", "verify", "probe", "judge")

KEY_VERSION = 1  # bump when the key recipe changes (old rows then simply stop matching)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def clean_base_url(base_url: str | None) -> str | None:
    """Base URL without user-info, query or fragment (these may carry credentials)."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def prompt_hash(messages: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical messages alone (for lineage: 'which prompt was this')."""
    return sha256_hex(canonical_json(messages))


def key_for(
    provider: str,
    model: str,
    base_url: str | None,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    schema_json: str | None,
) -> str:
    """Cache key of one call: SHA-256 of a canonical JSON of everything that shapes the output.

    ``messages`` must already be in their canonical, secret-free form (images referenced by
    content hash, not inlined); ``params`` holds only generation parameters (temperature,
    max_tokens, structured mode, stop, ...), never credentials, timeouts or concurrency.
    """
    payload = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "base_url": clean_base_url(base_url),
        "messages": messages,
        "params": params,
        "schema": json.loads(schema_json) if schema_json else None,
    }
    return sha256_hex(canonical_json(payload))


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class CallRecord(BaseModel):
    """One LLM call as stored in the cache (successes) or the failures table."""

    call_id: str
    provider: str
    model: str
    purpose: str
    prompt_hash: str
    request: dict[str, Any]  # {"messages": [...], "params": {...}, "schema": ...}; no secrets
    response_text: str | None = None
    parsed_json: Any | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    created_at: str = Field(default_factory=utc_now_iso)
    attempts: int = 1
    error: str | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id     TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_purpose ON calls(purpose);
CREATE TABLE IF NOT EXISTS failures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    error       TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_call ON failures(call_id);
"""


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL mode. Switching needs an exclusive lock and SQLite does not
    run the busy handler for it, so processes opening a new file at the same moment get
    "database is locked" at once: retry until ``timeout_s``."""
    for attempt in Retrying(
        retry=retry_if_exception(_is_locked),
        stop=stop_after_delay(timeout_s),
        wait=wait_random_exponential(multiplier=0.002, max=0.1),
        reraise=True,
    ):
        with attempt:
            conn.execute("PRAGMA journal_mode=WAL")


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class CallCache:
    """SQLite-backed call cache. Thread-safe; one connection per process (fork-safe)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with self._lock:
            conn = self._connection()
            conn.executescript(_SCHEMA)
            conn.commit()

    # -- connection ---------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                str(self.path),
                timeout=self._busy_timeout_s,
                check_same_thread=False,
                isolation_level=None,  # explicit BEGIN/COMMIT below
            )
            _set_wal(conn, self._busy_timeout_s)
            # In WAL mode NORMAL is durable against process crashes (SIGKILL): a commit is
            # in the WAL file (the OS page cache) when put() returns; only a power loss or
            # an OS crash can drop the last transactions.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            self._conn = conn
            self._pid = os.getpid()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # picklable for multiprocess executors
        return {"path": str(self.path), "busy_timeout_s": self._busy_timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], busy_timeout_s=state["busy_timeout_s"])  # type: ignore[misc]

    # -- static helpers, re-exported for convenience ---------------------------------------------
    key_for = staticmethod(key_for)

    # -- reads ------------------------------------------------------------------------------------
    def get(self, key: str) -> CallRecord | None:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT record FROM calls WHERE call_id = ?", (key,))
                .fetchone()
            )
        return CallRecord.model_validate_json(row[0]) if row else None

    def __contains__(self, key: str) -> bool:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT 1 FROM calls WHERE call_id = ?", (key,))
                .fetchone()
            )
        return row is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def iter_records(self) -> Iterator[CallRecord]:
        with self._lock:
            rows = (
                self._connection()
                .execute("SELECT record FROM calls ORDER BY created_at, call_id")
                .fetchall()
            )
        for (text,) in rows:
            yield CallRecord.model_validate_json(text)

    def failures(self, unresolved_only: bool = True) -> list[CallRecord]:
        """Recorded failures; by default only those with no later success for the same key."""
        sql = "SELECT record FROM failures"
        if unresolved_only:
            sql += " WHERE call_id NOT IN (SELECT call_id FROM calls)"
        sql += " ORDER BY id"
        with self._lock:
            rows = self._connection().execute(sql).fetchall()
        return [CallRecord.model_validate_json(t) for (t,) in rows]

    # -- writes -----------------------------------------------------------------------------------
    def put(self, record: CallRecord, replace: bool = False) -> bool:
        """Store a call, committed before returning. Successes go to ``calls`` (the first
        writer of a key wins unless ``replace``); records with ``error`` set go to
        ``failures``. Returns True if a success row was written."""
        text = record.model_dump_json()
        with self._lock:
            conn = self._connection()
            if record.error is not None:
                conn.execute(
                    "INSERT INTO failures (call_id, provider, model, purpose, created_at, error,"
                    " record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.call_id,
                        record.provider,
                        record.model,
                        record.purpose,
                        record.created_at,
                        record.error,
                        text,
                    ),
                )
                return False
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            cur = conn.execute(
                f"{verb} INTO calls (call_id, provider, model, purpose, prompt_hash,"
                " created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.call_id,
                    record.provider,
                    record.model,
                    record.purpose,
                    record.prompt_hash,
                    record.created_at,
                    text,
                ),
            )
            return cur.rowcount == 1

    # -- JSONL exchange ---------------------------------------------------------------------------
    def export_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write every successful call as one JSON line (oldest first). Returns the count."""
        from skill_assets.core.atomic import atomic_path

        n = 0
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for rec in self.iter_records():
                fh.write(rec.model_dump_json() + "\n")
                n += 1
        return n

    def import_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Load calls exported by :meth:`export_jsonl`. Idempotent: keys already present are
        kept. Returns the number of calls newly added. Lines with ``error`` set are skipped."""
        records: list[CallRecord] = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = CallRecord.model_validate_json(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: not a call record ({exc})") from None
                if rec.error is None:
                    records.append(rec)
        added = 0
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for rec in records:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO calls (call_id, provider, model, purpose,"
                        " prompt_hash, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            rec.call_id,
                            rec.provider,
                            rec.model,
                            rec.purpose,
                            rec.prompt_hash,
                            rec.created_at,
                            rec.model_dump_json(),
                        ),
                    )
                    added += cur.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return added

    # -- reporting --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts, tokens and cost of stored calls, overall and by purpose / model."""
        with self._lock:
            rows = self._connection().execute("SELECT purpose, model, record FROM calls").fetchall()
            n_fail = self._connection().execute("SELECT COUNT(*) FROM failures").fetchone()[0]
            n_unresolved = (
                self._connection()
                .execute(
                    "SELECT COUNT(DISTINCT call_id) FROM failures"
                    " WHERE call_id NOT IN (SELECT call_id FROM calls)"
                )
                .fetchone()[0]
            )
        by_purpose: dict[str, int] = {}
        by_model: dict[str, int] = {}
        tin = tout = 0
        cost = 0.0
        for purpose, model, text in rows:
            by_purpose[purpose] = by_purpose.get(purpose, 0) + 1
            by_model[model] = by_model.get(model, 0) + 1
            rec = json.loads(text)
            usage = rec.get("usage") or {}
            tin += int(usage.get("input_tokens") or 0)
            tout += int(usage.get("output_tokens") or 0)
            cost += float(rec.get("cost_usd") or 0.0)
        return {
            "path": str(self.path),
            "calls": len(rows),
            "by_purpose": by_purpose,
            "by_model": by_model,
            "input_tokens": tin,
            "output_tokens": tout,
            "cost_usd": round(cost, 6),
            "failures": int(n_fail),
            "unresolved_failures": int(n_unresolved),
        }
