"""Drive annotation-shaped calls through a local fault-injecting OpenAI-compatible server.

The server answers after a fixed latency and injects 429s, 500s and timeouts; the
script prints throughput as a share of what the concurrency limit allows
(concurrency / latency) and how many calls were lost (never answered, not
recorded as failures).

    .venv/bin/python benchmarks/llm_load.py --calls 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import multiprocessing
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

    # The server runs in its own process, as a provider would: the client's CPU time
    # (HTTP, JSON, validation) must not share a GIL with the server's.
    ctx = multiprocessing.get_context("spawn")
    port_q = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(
        target=_serve, args=(port_q, stop, args.latency, args.timeout * 3), daemon=True
    )
    server.start()
    (port,) = port_q.get(timeout=60)
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        settings = LLMSettings(
            provider="openai-compatible",
            model="load-test",
            base_url=base_url,
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
        stop.set()
        stats = port_q.get(timeout=30)
        server.join(timeout=10)
        ideal = args.concurrency / args.latency
        print(f"calls={args.calls} concurrency={args.concurrency} latency={args.latency}s")
        print(f"server requests={stats['requests']} injected faults={stats['faults']}")
        print(f"succeeded={ok} failed_after_retries={failed} persisted={stored} lost={lost}")
        print(f"wall={wall:.1f}s throughput={args.calls / wall:.1f}/s ideal={ideal:.1f}/s")
        print(f"throughput share of concurrency limit = {args.calls / wall / ideal:.1%}")
        print(f"peak in flight at server = {stats['max_in_flight']}")


def _serve(port_q, stop, latency: float, slow_s: float) -> None:
    """Fault-injecting server: 5% 429, 2% 500, 1% answers slower than the client timeout."""
    with FakeOpenAIServer(
        responder=_answer,
        fault_probability=0.08,
        fault_kinds=["429"] * 5 + ["500"] * 2 + ["slow"],
        seed=7,
        latency_s=latency,
        slow_s=slow_s,
        retry_after="0.05",
    ) as srv:
        port_q.put((srv.port,))
        stop.wait()
        port_q.put(
            {
                "requests": len(srv.requests),
                "faults": sum(1 for r in srv.requests if r.fault),
                "max_in_flight": srv.max_in_flight,
            }
        )


def _answer(body):
    return {"skills": ["Reasoning", "Arithmetic", "Adding"], "answer": "A"}


if __name__ == "__main__":
    main()
