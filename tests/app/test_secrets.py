"""A sentinel API key never reaches logs, metadata, the call cache, exports, reports or errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_project
from tests.defs.test_graph_llm import responder
from tests.fake_openai_server import FakeOpenAIServer

SENTINEL = "sk-SENTINEL-4f1c2b9e7d-do-not-leak"


def _cli(env, *args):
    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


def _all_bytes(folder: Path) -> bytes:
    out = b""
    for f in folder.rglob("*"):
        if f.is_file():
            out += f.read_bytes()
    return out


def test_sentinel_key_never_leaks(tmp_path):
    env = os.environ.copy()
    env["SKILL_SLICES_TEST_KEY"] = SENTINEL
    # The first request gets a 401 that echoes the key back, as some providers do.
    with FakeOpenAIServer(responder=responder, faults=["401"]) as srv:
        root = write_project(tmp_path / "p")
        reg = root / "skill-slices.yaml"
        reg.write_text(
            reg.read_text().replace(
                "annotator:\n  provider: taxonomy\n",
                "annotator:\n  provider: openai-compatible\n  model: recorded-annotator\n"
                f"  base_url: {srv.base_url}\n  api_key_env: SKILL_SLICES_TEST_KEY\n"
                "  max_concurrency: 1\n",
            )
        )
        first = _cli(env, "run", "--project", str(root))
        second = _cli(env, "run", "--project", str(root))
        export = _cli(env, "cache", "export", str(tmp_path / "calls.jsonl"), "--project", str(root))
        report = _cli(env, "report", "--project", str(root))
        # the key did reach the server, so the sentinel is a real test
        assert any(SENTINEL in r.headers.get("authorization", "") for r in srv.requests)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.strip().splitlines()[-1])["llm_calls"]["made"] == 1
    for out in (first, second, export, report):
        assert SENTINEL not in out.stdout and SENTINEL not in out.stderr
    assert SENTINEL.encode() not in _all_bytes(root / ".skill-slices")
    assert SENTINEL not in (tmp_path / "calls.jsonl").read_text()


URL_SECRET = "pwSENTINEL-77aa0c-do-not-leak"
QUERY_SECRET = "qsSENTINEL-0b1c99-do-not-leak"
SECRETS = (SENTINEL, URL_SECRET, QUERY_SECRET)


def _clean(text: str) -> bool:
    return not any(s in text for s in SECRETS)


def test_secrets_in_urls_env_and_fields_never_leak_on_any_error_path(tmp_path):
    """Sentinels in the key variable, in base_url user-info and query, and pasted into
    fields that expect other things; every error path we can force is grepped for them."""
    import traceback

    from skill_assets.core.registry import RegistryError, load_project, redact_url
    from skill_assets.resources.llm import LLMSettings

    env = os.environ.copy()
    env["SKILL_SLICES_TEST_KEY"] = SENTINEL
    outputs: list[str] = []
    root = write_project(tmp_path / "p", n_per_subject=2)
    reg = root / "skill-slices.yaml"
    base = reg.read_text()

    def annotator(block: str) -> str:
        return base.replace("annotator:\n  provider: taxonomy\n", "annotator:\n" + block)

    with FakeOpenAIServer(responder=responder, faults=lambda body: "401") as srv:
        host = f"127.0.0.1:{srv.port}"
        bad_registries = {
            "userinfo": annotator(
                "  provider: openai-compatible\n  model: a\n"
                f"  base_url: http://user:{URL_SECRET}@{host}/v1\n"
            ),
            "query": base.replace(
                "models:\n",
                "models:\n  - name: live\n    provider: openai-compatible\n    model: m\n"
                f"    base_url: http://{host}/v1?api-key={QUERY_SECRET}\n",
            ),
            "bad url": annotator(
                f"  provider: openai-compatible\n  model: a\n  base_url: http://[{URL_SECRET}/v1\n"
            ),
            "key pasted as the variable name": annotator(
                f"  provider: openai\n  model: a\n  api_key_env: {SENTINEL}\n"
            ),
            "wrong type": annotator(f"  provider: openai\n  model: a\n  max_tokens: {SENTINEL}\n"),
            "wrong literal": annotator(f"  provider: {SENTINEL}\n  model: a\n"),
            "judge": base + f"judge:\n  provider: openai-compatible\n  model: j\n"
            f"  base_url: http://u:{URL_SECRET}@{host}/v1\n",
        }
        for name, text in bad_registries.items():
            reg.write_text(text)
            try:
                load_project(root)
            except RegistryError as e:
                shown = "".join(traceback.format_exception(e))
                assert _clean(shown), (name, shown)
            else:
                raise AssertionError(f"{name}: accepted")
        for name in ("userinfo", "query", "key pasted as the variable name"):
            reg.write_text(bad_registries[name])
            for args in (("run",), ("evaluate", "--model", "live"), ("report",)):
                out = _cli(env, *args, "--project", str(root))
                assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
                outputs += [out.stdout, out.stderr]
        # the settings model behind every client hides raw values as well
        try:
            LLMSettings(provider="openai", model="m", base_url=f"http://u:{URL_SECRET}@h/v1")
        except ValueError as e:
            assert _clean("".join(traceback.format_exception(e)))
        assert redact_url(f"http://u:{URL_SECRET}@h:1/v1?k={QUERY_SECRET}") == (
            "http://***@h:1/v1?***"
        )

        # a run that fails: every call rejected by a server that echoes the key back
        reg.write_text(
            annotator(
                "  provider: openai-compatible\n  model: a\n"
                f"  base_url: {srv.base_url}\n  api_key_env: SKILL_SLICES_TEST_KEY\n"
                "  max_retries: 0\n"
            )
        )
        failed = _cli(env, "run", "--project", str(root))
        assert failed.returncode == 2 and "all 10 LLM calls failed" in failed.stderr, failed.stderr[
            -2000:
        ]
        outputs += [failed.stdout, failed.stderr]
        assert any(SENTINEL in r.headers.get("authorization", "") for r in srv.requests)
        doctor = _cli(env, "doctor", "--project", str(root))
        outputs += [doctor.stdout, doctor.stderr]
    for text in outputs:
        assert _clean(text), text[-2000:]
    stored = _all_bytes(tmp_path)  # the project, its state, Dagster's storage and logs
    assert (root / ".skill-slices" / "dagster").is_dir()
    for s in SECRETS:
        assert s.encode() not in stored, s
