"""Provider batch APIs (skill_assets/resources/batch.py) over real HTTP to tests/fake_openai_server.py.

The official openai / anthropic SDKs talk to the fake server's /v1/files, /v1/batches and
/v1/messages/batches endpoints; nothing of ours is patched.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from skill_assets.resources.batch import (
    BatchConfigError,
    BatchError,
    BatchPending,
    pending_batches,
    run_batch,
)
from skill_assets.resources.call_cache import CallCache
from skill_assets.resources.llm import LLMClient, LLMRequest, LLMSettings
from tests.fake_openai_server import Answer, FakeOpenAIServer, last_user_text
from tests.fake_openai_server import structured_responder as responder

KEY_ENV = "SKILL_SLICES_BATCH_TEST_KEY"
SECRET = "sk-batch-test-5f0c2e9a71"
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture(autouse=True)
def _key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def settings(srv: FakeOpenAIServer, provider: str, **kw) -> LLMSettings:
    base = dict(
        provider=provider,
        model="fake-model",
        base_url=srv.root_url if provider == "anthropic" else srv.base_url,
        api_key_env=KEY_ENV,
        timeout_s=5.0,
        max_retries=1,
        backoff_base_s=0.01,
        backoff_max_s=0.1,
        price_input_per_mtok=1.0,
        price_output_per_mtok=2.0,
    )
    base.update(kw)
    return LLMSettings(**base)


def requests(n: int = 6) -> list[LLMRequest]:
    """Plain and structured requests, with a system prompt and a stop sequence."""
    out = []
    for i in range(n):
        out.append(
            LLMRequest(
                messages=[
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": f"question {i}"},
                ],
                purpose="annotate" if i % 2 else "evaluate",
                response_model=Answer if i % 2 else None,
                stop=["\n\n"] if i == 2 else None,
                tag=f"t{i}",
            )
        )
    return out


def chat_path(provider: str) -> str:
    return "/v1/messages" if provider == "anthropic" else "/chat/completions"


def n_live(srv: FakeOpenAIServer, provider: str) -> int:
    return srv.count(chat_path(provider))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_batch_fills_cache_and_followup_makes_no_calls(provider, tmp_path):
    reqs = requests()
    with FakeOpenAIServer(responder) as srv:
        cache = CallCache(tmp_path / "calls.sqlite")
        client = LLMClient(settings(srv, provider), cache)
        stats = run_batch(client, reqs, tmp_path / "batches", poll_s=0.05, log=lambda m: None)
        assert stats.requests == 6 and stats.submitted == 6 and stats.written == 6
        assert stats.errored == 0 and stats.cached == 0 and len(stats.batches) == 1
        assert stats.by_purpose == {"annotate": 3, "evaluate": 3}
        assert srv.count_batches() == 1 and n_live(srv, provider) == 0
        assert not list((tmp_path / "batches").glob("*.json"))  # collected: state removed
        # every answer is in the cache under the key complete_many uses
        assert all(client.key_for_request(r) in cache for r in reqs)

        out = client.complete_many(reqs)
        assert n_live(srv, provider) == 0  # zero chat requests
        assert client.stats.made == 0 and client.stats.cached == 6
        assert all(r.ok and r.cached for r in out)
        assert out[0].text == "echo:question 0" and out[0].parsed is None
        assert out[1].parsed == Answer(answer="A:question 1", confidence=7)
        assert json.loads(out[1].text) == {"answer": "A:question 1", "confidence": 7}
        assert out[1].usage.input_tokens > 0 and out[1].usage.output_tokens > 0

        # a batch line is exactly the body the live path posts; the cached record is the one
        # a live call stores (batch tokens cost half)
        lines = {last_user_text(b): b for b in srv.batch_lines}
        live_cache = CallCache(tmp_path / "live.sqlite")
        live = LLMClient(settings(srv, provider), live_cache)
        assert all(r.ok for r in live.complete_many(reqs))
        live_bodies = {
            last_user_text(r.body): r.body
            for r in srv.requests
            if r.path.endswith(chat_path(provider))
        }
        assert lines == live_bodies
        assert lines["question 1"].get("tools") and "tools" not in lines["question 0"]
        for rec in live_cache.iter_records():
            got = cache.get(rec.call_id)
            fields = ("request", "response_text", "parsed_json", "usage", "purpose", "prompt_hash")
            assert {f: getattr(got, f) for f in fields} == {f: getattr(rec, f) for f in fields}
            assert got.cost_usd == pytest.approx(rec.cost_usd / 2)
            assert got.error is None and got.attempts == 1


def test_openai_wire_shape(tmp_path):
    reqs = requests(2)
    with FakeOpenAIServer(responder) as srv:
        client = LLMClient(settings(srv, "openai"), CallCache(tmp_path / "c.sqlite"))
        run_batch(client, reqs, tmp_path / "b", poll_s=0.05, log=lambda m: None)
        upload = next(r for r in srv.requests if r.path == "/v1/files")
        assert upload.headers["authorization"] == f"Bearer {SECRET}"
        create = next(r for r in srv.requests if r.path == "/v1/batches")
        assert create.body["endpoint"] == "/v1/chat/completions"
        assert create.body["completion_window"] == "24h"
        file_id = create.body["input_file_id"]
        assert srv.files[file_id]["meta"]["purpose"] == "batch"
        lines = [json.loads(x) for x in srv.files[file_id]["content"].decode().splitlines()]
        keys = {client.key_for_request(r) for r in reqs}
        assert {x["custom_id"] for x in lines} == keys
        assert all(x["method"] == "POST" and x["url"] == "/v1/chat/completions" for x in lines)
        # the OpenAI API wants max_completion_tokens (as the live path sends)
        assert all(x["body"]["max_completion_tokens"] == 1024 for x in lines)
        polls = [r for r in srv.requests if r.method == "GET" and "/v1/batches/" in r.path]
        assert len(polls) >= 2  # in progress, then completed
        assert any(r.path.endswith("/content") for r in srv.requests)


def test_anthropic_wire_shape(tmp_path):
    reqs = requests(2)
    with FakeOpenAIServer(responder) as srv:
        client = LLMClient(settings(srv, "anthropic"), CallCache(tmp_path / "c.sqlite"))
        run_batch(client, reqs, tmp_path / "b", poll_s=0.05, log=lambda m: None)
        create = next(r for r in srv.requests if r.path == "/v1/messages/batches")
        sent = create.headers.get("x-api-key") or create.headers.get("authorization", "")
        assert sent.removeprefix("Bearer ") == SECRET  # the header depends on the SDK version
        items = create.body["requests"]
        assert {x["custom_id"] for x in items} == {client.key_for_request(r) for r in reqs}
        params = next(x["params"] for x in items if "tools" in x["params"])
        assert params["system"] == "You are terse." and params["temperature"] == 0.0
        assert params["tools"][0]["name"] == "Answer" and params["max_tokens"] == 1024
        assert any(r.path.endswith("/results") for r in srv.requests)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_resume_after_restart_submits_once(provider, tmp_path):
    reqs = requests(4)
    state_dir = tmp_path / "batches"
    with FakeOpenAIServer(responder, batch_polls=10**6) as srv:
        first = LLMClient(settings(srv, provider), CallCache(tmp_path / "calls.sqlite"))
        with pytest.raises(BatchPending) as info:
            run_batch(first, reqs, state_dir, poll_s=0.05, log=lambda m: None, timeout_s=0.3)
        batch_id = info.value.batch_ids[0]
        assert batch_id in str(info.value) and "resume" in str(info.value)
        saved = json.loads(info.value.state_files[0].read_text())
        assert saved["batch_id"] == batch_id
        assert set(saved["custom_ids"].values()) == {first.key_for_request(r) for r in reqs}
        assert SECRET not in info.value.state_files[0].read_text()
        assert pending_batches(state_dir)[0]["batch_id"] == batch_id
        first.cache.close()

        # "restart": a new client and cache handle; the provider finishes meanwhile
        srv.batch_polls = 0
        client = LLMClient(settings(srv, provider), CallCache(tmp_path / "calls.sqlite"))
        stats = run_batch(client, reqs, state_dir, poll_s=0.05, log=lambda m: None)
        assert stats.batches == [batch_id] and stats.resumed == 4
        assert stats.submitted == 0 and stats.written == 4
        assert srv.count_batches() == 1  # exactly one batch was ever created
        assert pending_batches(state_dir) == []
        client.complete_many(reqs)
        assert n_live(srv, provider) == 0 and client.stats.cached == 4

        # a third run finds everything cached and contacts nobody
        before = len(srv.requests)
        again = run_batch(client, reqs, state_dir, poll_s=0.05, log=lambda m: None)
        assert again.cached == 4 and again.batches == [] and len(srv.requests) == before


@pytest.mark.parametrize("provider", PROVIDERS)
def test_errored_lines_are_retried_live(provider, tmp_path):
    reqs = requests(4)

    def line_fault(body: dict) -> str | None:
        return "500" if last_user_text(body) in ("question 1", "question 2") else None

    with FakeOpenAIServer(responder, batch_line_fault=line_fault) as srv:
        client = LLMClient(settings(srv, provider), CallCache(tmp_path / "calls.sqlite"))
        stats = run_batch(client, reqs, tmp_path / "b", poll_s=0.05, log=lambda m: None)
        assert stats.written == 2 and stats.errored == 2
        assert not list((tmp_path / "b").glob("*.json"))
        out = client.complete_many(reqs)
        assert all(r.ok for r in out)
        assert n_live(srv, provider) == 2  # only the errored lines, once each
        assert [r.cached for r in out] == [True, False, False, True]
        assert out[1].parsed == Answer(answer="A:question 1", confidence=7)


def test_failed_batch_falls_back_to_live(tmp_path):
    reqs = requests(3)
    with FakeOpenAIServer(responder, batch_status="failed") as srv:
        client = LLMClient(settings(srv, "openai"), CallCache(tmp_path / "calls.sqlite"))
        stats = run_batch(client, reqs, tmp_path / "b", poll_s=0.05, log=lambda m: None)
        assert stats.written == 0 and stats.submitted == 3
        assert not list((tmp_path / "b").glob("*.json"))  # not resumed forever
        assert all(r.ok for r in client.complete_many(reqs))
        assert n_live(srv, "openai") == 3


def test_only_uncached_requests_are_submitted(tmp_path):
    reqs = requests(4)
    with FakeOpenAIServer(responder) as srv:
        client = LLMClient(settings(srv, "openai-compatible"), CallCache(tmp_path / "c.sqlite"))
        client.complete_many(reqs[:2] + [reqs[0]])  # two live, one duplicate
        stats = run_batch(client, reqs + [reqs[3]], tmp_path / "b", poll_s=0.05, log=lambda m: None)
        assert stats.requests == 4 and stats.cached == 2 and stats.submitted == 2
        assert sorted(last_user_text(b) for b in srv.batch_lines) == ["question 2", "question 3"]
        srv.reset_log()
        run_batch(client, reqs, tmp_path / "b", poll_s=0.05, log=lambda m: None)
        assert srv.requests == [] and srv.count_batches() == 1


def test_local_provider_is_a_config_error(tmp_path):
    client = LLMClient(
        LLMSettings(provider="local", model="smollm2-135m-instruct"), CallCache(tmp_path / "c")
    )
    with pytest.raises(BatchConfigError, match="batch mode needs provider"):
        run_batch(client, requests(1), tmp_path / "b")


# ------------------------------------------------------------------------------------------
# hooks: live evaluation and the LLM annotator
# ------------------------------------------------------------------------------------------
def test_live_evaluation_batch_mode(tmp_path):
    from skill_assets.core.registry import ModelEntry
    from skill_assets.core.schemas import INSTANCES, conform
    from skill_assets.ingest.live import run_live_evaluation

    rows = [
        {
            "uid": f"mc/{i}",
            "benchmark": "mc",
            "instance_id": str(i),
            "question": f"Pick option {i}",
            "options": ["x", "y", "z"],
            "answer": "B",
            "image": None,
            "metadata": "{}",
        }
        for i in range(5)
    ]
    inst = conform(pl.DataFrame(rows, schema=INSTANCES), INSTANCES)

    def answer(body: dict) -> str:
        return (
            "B" if "option 0" in last_user_text(body) or "option 1" in last_user_text(body) else "C"
        )

    with FakeOpenAIServer(answer) as srv:
        entry = ModelEntry(
            name="m",
            provider="openai",
            model="fake-model",
            base_url=srv.base_url,
            api_key_env=KEY_ENV,
            batch=True,
            batch_poll_s=0.05,
        )
        client = LLMClient(
            LLMSettings(**entry.llm_entry().model_dump(exclude_none=True)),
            CallCache(tmp_path / "c.sqlite"),
        )
        with pytest.raises(ValueError, match="batch_state_dir"):
            run_live_evaluation(inst, entry, client, log=lambda m: None)
        res, fails, stats = run_live_evaluation(
            inst, entry, client, log=lambda m: None, batch_state_dir=tmp_path / "batches"
        )
        assert fails.height == 0 and res["correct"].to_list() == [1.0, 1.0, 0.0, 0.0, 0.0]
        assert srv.count("/chat/completions") == 0 and srv.count_batches() == 1
        # batch answers count as made in this run; the cache hits they became do not
        assert stats.made == 5 and stats.cached == 0 and stats.batch.written == 5
        assert res["call_id"].null_count() == 0


def test_annotator_batch_mode(tmp_path):
    from skill_assets.annotate.dispatch import annotate_instances
    from skill_assets.app.runner import preflight
    from skill_assets.core.registry import load_project
    from skill_assets.resources.project import ProjectResource
    from tests.conftest import write_project
    from tests.defs.test_graph_llm import responder as annotator_responder

    with FakeOpenAIServer(annotator_responder) as srv:
        root = write_project(tmp_path / "proj", n_per_subject=4)
        reg = root / "skill-slices.yaml"
        reg.write_text(
            reg.read_text().replace(
                "annotator:\n  provider: taxonomy\n",
                "annotator:\n  provider: openai-compatible\n  model: recorded-annotator\n"
                f"  base_url: {srv.base_url}\n  batch: true\n  batch_poll_s: 0.05\n",
            )
        )
        project = load_project(root)
        inst = preflight(project)["bench"]
        resource = ProjectResource(project_dir=str(root))
        rationales, mentions, stats = annotate_instances(
            inst, project, resource, log=lambda m: None
        )
        assert srv.count("/chat/completions") == 0 and srv.count_batches() == 1
        distinct = len(
            {(q, tuple(o)) for q, o in zip(inst["question"], inst["options"], strict=True)}
        )
        assert len(srv.batch_lines) == distinct
        assert all(b.get("tools") for b in srv.batch_lines)  # structured, as live
        assert rationales["error"].null_count() == inst.height and mentions.height > 0
        assert stats.made == distinct and stats.made + stats.cached == inst.height
        assert stats.by_purpose["annotate"].made == distinct
        assert stats.batch.written == distinct
        assert not list((project.state_dir / "batches").glob("*.json"))

        # interactive callers opt out: a new question goes live, no batch
        one = inst.head(1).with_columns(pl.lit("What is 3 plus 4?").alias("question"))
        annotate_instances(one, project, resource, log=lambda m: None, batch=False)
        assert srv.count("/chat/completions") == 1 and srv.count_batches() == 1


def test_batch_api_errors_are_clear_and_redacted(tmp_path):
    reqs = requests(2)
    with FakeOpenAIServer(responder) as srv:
        # a compatible server without the batch endpoints answers 404
        s = settings(srv, "openai-compatible", base_url=f"{srv.root_url}/nobatch/v1")
        client = LLMClient(s, CallCache(tmp_path / "c.sqlite"))
        with pytest.raises(BatchError, match="provider batch API .* failed") as info:
            run_batch(client, reqs, tmp_path / "b", poll_s=0.05, log=lambda m: None)
        assert SECRET not in str(info.value)
        assert not list((tmp_path / "b").glob("*.json"))


def test_unknown_batch_in_state_is_dropped(tmp_path):
    reqs = requests(2)
    with FakeOpenAIServer(responder) as srv:
        client = LLMClient(settings(srv, "openai"), CallCache(tmp_path / "c.sqlite"))
        state_dir = tmp_path / "b"
        state_dir.mkdir()
        keys = [client.key_for_request(r) for r in reqs]
        (state_dir / "openai-batch_gone.json").write_text(
            json.dumps({"batch_id": "batch_gone", "custom_ids": {k: k for k in keys}})
        )
        stats = run_batch(client, reqs, state_dir, poll_s=0.05, log=lambda m: None)
        assert stats.resumed == 2 and stats.written == 0
        assert not list(state_dir.glob("*.json"))
        assert all(r.ok for r in client.complete_many(reqs))  # live
        assert n_live(srv, "openai") == 2
