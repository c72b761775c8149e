"""Drive annotation-shaped calls through a local fault-injecting OpenAI-compatible server.

The server answers after a fixed latency and injects 429s, 500s and timeouts; the
script prints throughput as a share of what the concurrency limit allows
(concurrency / latency) and how many calls were lost (never answered, not
recorded as failures).

    .venv/bin/python benchmarks/llm_load.py --calls 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel  # noqa: E402

from resources.call_cache import CallCache  # noqa: E402
from resources.llm import LLMClient, LLMRequest, LLMSettings  # noqa: E402
from tests.fake_openai_server import FakeOpenAIServer  # noqa: E402


class Skills(BaseModel):
    skills: list[str]
    answer: str


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args()

    def fault(_body, rng=__import__("random").Random(7)):
        x = rng.random()
        if x < 0.05:
            return "429"
        if x < 0.07:
            return "500"
        if x < 0.08:
            return "slow"
        return None

    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAIServer(
            responder=lambda body: {"skills": ["Reasoning", "Arithmetic", "Adding"], "answer": "A"},
            faults=fault,
            latency_s=args.latency,
            slow_s=args.timeout * 3,
            retry_after="0.05",
        ) as srv,
    ):
        settings = LLMSettings(
            provider="openai-compatible",
            model="load-test",
            base_url=srv.base_url,
            max_concurrency=args.concurrency,
            timeout_s=args.timeout,
            max_retries=6,
            backoff_base_s=0.05,
            backoff_max_s=1.0,
        )
        client = LLMClient(settings, CallCache(Path(tmp) / "calls.sqlite"))
        requests = [
            LLMRequest(
                messages=[{"role": "user", "content": f"Annotate question {i}."}],
                purpose="annotate",
                response_model=Skills,
                tag=str(i),
            )
            for i in range(args.calls)
        ]
        t0 = time.perf_counter()
        results = client.complete_many(requests)
        wall = time.perf_counter() - t0
        ok = sum(r.error is None for r in results)
        failed = sum(r.error is not None for r in results)
        cache = CallCache(Path(tmp) / "calls.sqlite")
        stored = sum(1 for r in results if r.error is None and cache.get(r.call_id) is not None)
        lost = args.calls - stored - failed
        faults = sum(1 for r in srv.requests if r.fault)
        ideal = args.concurrency / args.latency
        print(f"calls={args.calls} concurrency={args.concurrency} latency={args.latency}s")
        print(f"server requests={len(srv.requests)} injected faults={faults}")
        print(f"succeeded={ok} failed_after_retries={failed} persisted={stored} lost={lost}")
        print(f"wall={wall:.1f}s throughput={args.calls / wall:.1f}/s ideal={ideal:.1f}/s")
        print(f"throughput share of concurrency limit = {args.calls / wall / ideal:.1%}")
        print(f"peak in flight at server = {srv.max_in_flight}")


if __name__ == "__main__":
    main()
