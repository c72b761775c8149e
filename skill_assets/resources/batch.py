"""Provider batch APIs (OpenAI Batch, Anthropic Message Batches) as a call-cache pre-filler.

    run_batch(client, requests, state_dir=project.state_dir / "batches", poll_s=30)
    results = client.complete_many(requests)   # every answer the batch returned: 0 HTTP calls

:func:`run_batch` sends the requests that are not in the call cache yet as one provider
batch (cheaper, slower), waits for it, and writes every answer to the cache as the very
:class:`~skill_assets.resources.call_cache.CallRecord` that :meth:`LLMClient.complete_many` would have
stored for that request (same key, text, parsed JSON, usage). The normal ``complete_many``
call that follows then finds them all in the cache; lines the provider reported as errored
(or that do not parse/validate) are simply absent, so ``complete_many`` retries them live.

Resume: the batch id and the custom_id → cache-key map are written to a JSON file under
``state_dir`` *before* polling starts. A process that is stopped (crash, deploy, SIGKILL,
or ``timeout_s`` → :class:`BatchPending`) and started again with the same requests finds
that file, polls the batch it already paid for and never submits those requests twice.
A state file is removed once each of its requests is in the cache or came back errored.

Request bodies are built with the same helpers and the same instructor request handler as
the live path in ``skill_assets.resources.llm`` (tools / response_format / system prompt, token and
temperature parameters), so a batch line is byte-for-byte the JSON the live call would post,
and responses are parsed with instructor's own response parser.

Only ``openai``, ``openai-compatible`` (a server implementing ``/v1/files`` and
``/v1/batches``) and ``anthropic`` support batches; ``local`` raises
:class:`BatchConfigError`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from skill_assets.core.atomic import atomic_path
from skill_assets.resources.call_cache import CallRecord, clean_base_url, utc_now_iso
from skill_assets.resources.call_stats import BatchStats
from skill_assets.resources.llm import (
    LLMClient,
    LLMConfigError,
    LLMRequest,
    _anthropic_messages,
    _anthropic_text,
    _anthropic_usage,
    _api_key,
    _dump_parsed,
    _install_log_filters,
    _instructor_mode,
    _openai_messages,
    _openai_text,
    _openai_usage,
    _OpenAIBackend,
    _Outcome,
    _Prepared,
    _short,
    redact,
)

logger = logging.getLogger("skill_slices.batch")

BATCH_PROVIDERS = ("openai", "openai-compatible", "anthropic")
STATE_VERSION = 1
OPENAI_ENDPOINT = "/v1/chat/completions"
# Provider limits per batch (requests, bytes); we stay a little below the byte limits.
LIMITS = {
    "openai": (50_000, 190 * 1024 * 1024),
    "openai-compatible": (50_000, 190 * 1024 * 1024),
    "anthropic": (100_000, 240 * 1024 * 1024),
}
# OpenAI and Anthropic bill batch tokens at half the live price; for compatible servers the
# registry's prices are taken as they are.
BATCH_PRICE_FACTOR = {"openai": 0.5, "anthropic": 0.5, "openai-compatible": 1.0}
OPENAI_ENDED = ("completed", "failed", "expired", "cancelled")


class BatchConfigError(LLMConfigError):
    """Batch mode cannot work with these settings (e.g. the ``local`` provider)."""


class BatchError(RuntimeError):
    """The provider's batch API refused or failed (the message is redacted). Batches already
    submitted stay recorded under ``state_dir`` and are resumed by the next call."""


class BatchPending(TimeoutError):
    """Submitted batches did not end within ``timeout_s``. Their ids are saved under
    ``state_dir``; calling :func:`run_batch` again with the same requests resumes them."""

    def __init__(self, batch_ids: list[str], state_files: list[Path], waited_s: float):
        self.batch_ids = batch_ids
        self.state_files = state_files
        super().__init__(
            f"provider batch(es) {', '.join(batch_ids)} still running after {waited_s:.0f}s; "
            f"state saved in {', '.join(str(p) for p in state_files)}; "
            "run again to resume polling (nothing is submitted twice)"
        )


# ----------------------------------------------------------------------------------------------
# request bodies and response parsing (mirrors skill_assets.resources.llm's backends)
# ----------------------------------------------------------------------------------------------
def _structured_kwargs(p: _Prepared, settings, anthropic: bool, kw: dict[str, Any]):
    from instructor.processing.response import handle_response_model

    mode = _instructor_mode(settings, anthropic=anthropic)
    model, new_kw = handle_response_model(p.req.response_model, mode=mode, **kw)
    return model, mode, new_kw


def openai_body(p: _Prepared, settings) -> dict[str, Any]:
    """The JSON body the live OpenAI(-compatible) path posts to /v1/chat/completions."""
    # _OpenAIBackend._kwargs reads nothing but the settings; calling it on a stand-in avoids
    # building an async HTTP client just to compute parameters.
    kw = _OpenAIBackend._kwargs(SimpleNamespace(s=settings), p)  # type: ignore[arg-type]
    kw = {"model": settings.model, "messages": _openai_messages(p.msgs), **kw}
    if p.structured:
        _, _, kw = _structured_kwargs(p, settings, False, kw)
    return _flatten_extra_body(kw)


def anthropic_params(p: _Prepared, settings) -> dict[str, Any]:
    """The JSON body the live Anthropic path posts to /v1/messages."""
    system, messages = _anthropic_messages(p.msgs)
    kw: dict[str, Any] = dict(settings.extra_params)
    kw["max_tokens"] = p.max_tokens
    if p.temperature is not None:
        kw["extra_body"] = {**kw.get("extra_body", {}), "temperature": p.temperature}
    if p.req.stop:
        kw["stop_sequences"] = p.req.stop
    if system:
        kw["system"] = system
    kw = {"model": settings.model, "messages": messages, **kw}
    if p.structured:
        _, _, kw = _structured_kwargs(p, settings, True, kw)
    return _flatten_extra_body(kw)


def _flatten_extra_body(kw: dict[str, Any]) -> dict[str, Any]:
    """SDKs merge ``extra_body`` into the posted JSON; a batch line must carry it inline."""
    kw = dict(kw)
    extra = kw.pop("extra_body", None) or {}
    kw.pop("max_retries", None)
    kw.update(extra)
    return kw


def _outcome(p: _Prepared, settings, raw: Any, anthropic: bool) -> _Outcome:
    """Text, parsed JSON and usage of one response, as the live backend would record them.
    Raises ValueError when the live path would not have stored the answer either."""
    if p.structured:
        from instructor.processing.response import process_response

        model, mode, _ = _structured_kwargs(
            p, settings, anthropic, {"model": settings.model, "messages": []}
        )
        parsed = process_response(raw, response_model=model, stream=False, mode=mode)
        text_of = _anthropic_text if anthropic else _openai_text
        text = text_of(raw) or json.dumps(_dump_parsed(parsed))
        usage = _anthropic_usage(raw) if anthropic else _openai_usage(raw)
        return _Outcome(text, _dump_parsed(parsed), usage)
    if anthropic:
        content = _anthropic_text(raw)
        if content is None:
            raise ValueError("response has no content")
        return _Outcome(content, None, _anthropic_usage(raw))
    if not getattr(raw, "choices", None):
        raise ValueError("response has no choices")
    content = _openai_text(raw)
    if content is None:
        raise ValueError("response has no message content")
    return _Outcome(content, None, _openai_usage(raw))


# ----------------------------------------------------------------------------------------------
# state files
# ----------------------------------------------------------------------------------------------
def _write_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())  # a batch id must survive a power cut: it costs money


def _read_states(state_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    out: list[tuple[Path, dict[str, Any]]] = []
    if not state_dir.is_dir():
        return out
    for path in sorted(state_dir.glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("ignoring unreadable batch state file %s", path)
            continue
        if isinstance(state, dict) and state.get("batch_id") and state.get("custom_ids"):
            out.append((path, state))
    return out


def pending_batches(state_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Batches submitted and not yet collected (for status displays)."""
    return [
        {k: v for k, v in s.items() if k != "custom_ids"} | {"n": len(s["custom_ids"])}
        for _, s in _read_states(Path(state_dir))
    ]


def _state_path(state_dir: Path, provider: str, batch_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", batch_id)
    return state_dir / f"{provider}-{safe}.json"


# ----------------------------------------------------------------------------------------------
# provider adapters (official SDKs, synchronous)
# ----------------------------------------------------------------------------------------------
class _OpenAIBatches:
    def __init__(self, settings):
        import openai

        self.s = settings
        self.client = openai.OpenAI(
            api_key=_api_key(settings),
            base_url=settings.base_url,
            max_retries=settings.max_retries,
            timeout=max(settings.timeout_s, 300.0),  # uploads and downloads are large
        )

    def line(self, custom_id: str, p: _Prepared) -> dict[str, Any]:
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": OPENAI_ENDPOINT,
            "body": openai_body(p, self.s),
        }

    def submit(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
        f = self.client.files.create(
            file=("skill-slices-batch.jsonl", data, "application/jsonl"), purpose="batch"
        )
        b = self.client.batches.create(
            input_file_id=f.id,
            endpoint=OPENAI_ENDPOINT,
            completion_window="24h",
            metadata={"created_by": "skill-slices"},
        )
        return {"batch_id": b.id, "input_file_id": f.id}

    def status(self, batch_id: str) -> tuple[bool, str, Any]:
        b = self.client.batches.retrieve(batch_id)
        return b.status in OPENAI_ENDED, b.status, b

    def results(self, batch_id: str, info: Any):
        """Yields (custom_id, raw ChatCompletion or None, error string or None)."""
        from openai.types.chat import ChatCompletion

        if info.status == "failed":
            errs = getattr(getattr(info, "errors", None), "data", None) or []
            msg = "; ".join(str(getattr(e, "message", e)) for e in errs) or "batch failed"
            logger.warning("batch %s failed: %s", batch_id, redact(msg))
        for fid in (info.output_file_id, info.error_file_id):
            if not fid:
                continue
            text = self.client.files.content(fid).text
            for raw_line in text.splitlines():
                if not raw_line.strip():
                    continue
                item = json.loads(raw_line)
                cid = item.get("custom_id")
                resp = item.get("response") or {}
                if item.get("error") or resp.get("status_code") != 200:
                    err = item.get("error") or (resp.get("body") or {}).get("error") or resp
                    yield cid, None, f"status {resp.get('status_code')}: {_short_json(err)}"
                    continue
                try:
                    yield cid, ChatCompletion.model_validate(resp["body"]), None
                except Exception as exc:  # a malformed line must not lose the others
                    yield cid, None, f"invalid response: {_short(exc)}"

    def close(self) -> None:
        self.client.close()


class _AnthropicBatches:
    def __init__(self, settings):
        import anthropic

        self.s = settings
        kwargs: dict[str, Any] = {}
        if settings.base_url:
            kwargs["base_url"] = settings.base_url
        self.client = anthropic.Anthropic(
            api_key=_api_key(settings),
            max_retries=settings.max_retries,
            timeout=max(settings.timeout_s, 300.0),  # uploads and downloads are large
            **kwargs,
        )

    def line(self, custom_id: str, p: _Prepared) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": anthropic_params(p, self.s)}

    def submit(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        b = self.client.messages.batches.create(requests=lines)
        return {"batch_id": b.id}

    def status(self, batch_id: str) -> tuple[bool, str, Any]:
        b = self.client.messages.batches.retrieve(batch_id)
        return b.processing_status == "ended", b.processing_status, b

    def results(self, batch_id: str, info: Any):
        for item in self.client.messages.batches.results(batch_id):
            r = item.result
            if r.type == "succeeded":
                yield item.custom_id, r.message, None
            elif r.type == "errored":
                err = getattr(getattr(r, "error", None), "error", None)
                yield item.custom_id, None, f"errored: {getattr(err, 'message', err)}"
            else:  # canceled / expired
                yield item.custom_id, None, r.type

    def close(self) -> None:
        self.client.close()


def _short_json(obj: Any, limit: int = 200) -> str:
    text = redact(json.dumps(obj, default=str) if not isinstance(obj, str) else obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# the entry point
# ----------------------------------------------------------------------------------------------
def run_batch(
    client: LLMClient,
    requests: Sequence[LLMRequest],
    state_dir: str | os.PathLike[str],
    poll_s: float = 30.0,
    log: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
) -> BatchStats:
    """Fill ``client``'s call cache with answers from the provider's batch API.

    Requests already cached are skipped; requests covered by a batch recorded under
    ``state_dir`` (an earlier, interrupted run) are collected from that batch; the rest are
    submitted as new batch(es) whose ids are saved before polling. Blocks until every batch
    has ended, polling every ``poll_s`` seconds; with ``timeout_s`` it raises
    :class:`BatchPending` instead once that many seconds have passed (call again to resume).

    Returns a :class:`BatchStats`: ``requests`` (distinct), ``cached`` (already in the cache),
    ``submitted`` (sent in new batches), ``resumed`` (collected from earlier batches),
    ``written`` (answers stored; ``by_purpose``: the same per purpose), ``errored`` (lines
    left for the live path), ``batches`` (ids), ``cost_usd``, ``input_tokens``,
    ``output_tokens`` (of the answers stored, at batch prices).
    """
    # Long because its stages (prepare, resume recorded batches, submit, poll, collect) run
    # in order over one API handle, one stats record and the state files, with one error
    # boundary (the provider's failures become one BatchError naming how to resume).
    s = client.settings
    if s.provider not in BATCH_PROVIDERS:
        raise BatchConfigError(
            f"batch mode needs provider openai, openai-compatible or anthropic, not "
            f"{s.provider!r}; remove 'batch: true' from this entry"
        )
    say = log or logger.info
    state_dir = Path(state_dir)
    _install_log_filters()

    prepared: dict[str, _Prepared] = {}
    for req in requests:
        try:
            p = client._prepare(req)
        except Exception:  # complete_many reports it; nothing to batch
            continue
        prepared.setdefault(p.key, p)
    stats = BatchStats(requests=len(prepared))
    pending = {k for k in prepared if k not in client.cache}
    stats.cached = len(prepared) - len(pending)
    if not pending:
        return stats

    api = _AnthropicBatches(s) if s.provider == "anthropic" else _OpenAIBatches(s)
    try:
        # 1. batches an earlier run submitted for any of these requests
        active: list[tuple[Path, dict[str, Any]]] = []
        covered: set[str] = set()
        for path, state in _read_states(state_dir):
            keys = set(state["custom_ids"].values())
            if keys & pending:
                active.append((path, state))
                covered |= keys & pending
                stats.resumed += len(keys & pending)
                say(
                    f"resuming provider batch {state['batch_id']} "
                    f"({len(keys & pending)} of our requests)"
                )

        # 2. new batches for the rest, saved before any polling
        todo = sorted(pending - covered)
        max_n, max_bytes = LIMITS[s.provider]
        chunk: list[tuple[str, dict[str, Any]]] = []
        size = 0

        def flush() -> None:
            nonlocal chunk, size
            if not chunk:
                return
            ids = api.submit([line for _, line in chunk])
            state = {
                "version": STATE_VERSION,
                "provider": s.provider,
                "model": s.model,
                "base_url": clean_base_url(s.base_url),
                "submitted_at": utc_now_iso(),
                "submitted_ts": time.time(),
                "status": "submitted",
                "custom_ids": {cid: cid for cid, _ in chunk},
                **ids,
            }
            path = _state_path(state_dir, s.provider, ids["batch_id"])
            _write_state(path, state)
            active.append((path, state))
            stats.submitted += len(chunk)
            say(f"submitted provider batch {ids['batch_id']} with {len(chunk)} requests")
            chunk, size = [], 0

        for key in todo:
            # custom_id = cache key (64 hex chars: valid for OpenAI and Anthropic)
            try:
                line = api.line(key, prepared[key])
            except Exception as exc:  # complete_many reports this request's problem
                logger.warning("not batching call %s: %s", key[:12], _short(exc))
                continue
            n = len(json.dumps(line, ensure_ascii=False).encode()) + 1
            if chunk and (len(chunk) >= max_n or size + n > max_bytes):
                flush()
            chunk.append((key, line))
            size += n
        flush()
        stats.batches = [st["batch_id"] for _, st in active]

        # 3. poll until every batch has ended, collecting each as it does
        t0 = time.monotonic()
        waiting = list(active)
        while waiting:
            still = []
            for path, state in waiting:
                try:
                    ended, status, info = api.status(state["batch_id"])
                except Exception as exc:
                    if getattr(exc, "status_code", None) != 404:
                        raise
                    # the provider no longer knows it (deleted, or a different account):
                    # forget it; its requests go to the live path
                    logger.warning("batch %s not found; dropping its state", state["batch_id"])
                    path.unlink(missing_ok=True)
                    continue
                if ended:
                    _collect(api, client, prepared, path, state, info, stats, say)
                else:
                    still.append((path, state))
            waiting = still
            if not waiting:
                break
            waited = time.monotonic() - t0
            if timeout_s is not None and waited >= timeout_s:
                raise BatchPending(
                    [st["batch_id"] for _, st in waiting], [p for p, _ in waiting], waited
                )
            delay = poll_s if timeout_s is None else max(0.0, min(poll_s, timeout_s - waited))
            time.sleep(delay)
    except (BatchPending, LLMConfigError):
        raise
    except Exception as exc:
        raise BatchError(
            f"provider batch API ({s.provider}) failed: {type(exc).__name__}: {_short(exc)}; "
            "run again to resume (batches already submitted are kept)"
        ) from None
    finally:
        api.close()
    stats.cost_usd = round(stats.cost_usd, 10)
    return stats


def _collect(
    api, client: LLMClient, prepared, path: Path, state, info, stats: BatchStats, say
) -> None:
    """Write an ended batch's answers to the cache; drop its state file once every request
    in it is resolved (cached or errored)."""
    s = client.settings
    anthropic = s.provider == "anthropic"
    factor = BATCH_PRICE_FACTOR.get(s.provider, 1.0)
    turnaround = max(0.0, time.time() - float(state.get("submitted_ts") or time.time()))
    resolved: set[str] = set()
    written = errored = 0
    for cid, raw, error in api.results(state["batch_id"], info):
        key = state["custom_ids"].get(cid)
        if key is None:
            continue
        p = prepared.get(key)
        if error is None and p is not None:
            try:
                outcome = _outcome(p, s, raw, anthropic)
            except Exception as exc:
                error = f"unusable response: {_short(exc)}"
            else:
                rec = client._record(p, outcome, turnaround, attempts=1)
                rec = rec.model_copy(update={"cost_usd": s.cost(outcome.usage) * factor})
                _put(client, rec)
                written += 1
                stats.cost_usd += rec.cost_usd
                stats.input_tokens += outcome.usage.input_tokens
                stats.output_tokens += outcome.usage.output_tokens
                bp = stats.by_purpose
                bp[p.req.purpose] = bp.get(p.req.purpose, 0) + 1
                resolved.add(key)
                continue
        if error is not None:
            resolved.add(key)
            if p is not None:
                errored += 1
                logger.info("batch line %s errored (retried live): %s", key[:12], redact(error))
    stats.written += written
    stats.errored += errored
    status = getattr(info, "status", None) or getattr(info, "processing_status", "")
    say(
        f"provider batch {state['batch_id']} ended ({status}): "
        f"{written} answers cached, {errored} left for live calls"
    )
    keys = set(state["custom_ids"].values())
    unresolved = {k for k in keys - resolved if k not in client.cache}
    # Lines the provider never answered (a failed/expired batch) are retried live as well.
    unresolved -= {k for k in unresolved if k in prepared}
    if unresolved:
        # answers that belong to another caller's requests: keep the state for it
        state = {**state, "status": "ended"}
        _write_state(path, state)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _put(client: LLMClient, rec: CallRecord) -> None:
    try:
        client.cache.put(rec)
    except Exception as exc:  # a full disk must not abort collecting the other answers
        logger.error("could not write call %s to the cache: %s", rec.call_id[:12], exc)


__all__ = [
    "BATCH_PROVIDERS",
    "BatchConfigError",
    "BatchError",
    "BatchPending",
    "anthropic_params",
    "openai_body",
    "pending_batches",
    "run_batch",
]
