"""Drive annotation-shaped calls through a local fault-injecting OpenAI-compatible server.

The server answers after a fixed latency and injects 429s, 500s and timeouts; the
script prints throughput as a share of what the concurrency limit allows
(concurrency / latency), the ceiling the injected faults leave, a fault-adjusted share,
and how many calls were lost (never answered, not recorded as failures).

    .venv/bin/python benchmarks/llm_load.py --calls 2000 --concurrency 16

The server is ``tests/fake_openai_server.py`` in its own process, with the same latency,
fault rates and client timeout as always. By default it runs with two socket settings
every production HTTP server has (see ``_serve``): ``TCP_NODELAY`` (with Nagle's algorithm
on, the stdlib handler's body waits ~40 ms for the client's delayed ACK, turning a 200 ms
server into a 245 ms one) and a listen backlog of 128 instead of the stdlib's 5 (a burst
of 16 connections overflows 5; the kernel drops the extra SYNs and they are retried after
1 s, past the 1 s timeout). ``--stock-server`` keeps the stdlib defaults, to reproduce the
earlier measurements.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel  # noqa: E402

from skill_assets.resources.call_cache import CallCache  # noqa: E402
from skill_assets.resources.llm import LLMClient, LLMRequest, LLMSettings  # noqa: E402

FAULT_KINDS = ["429"] * 5 + ["500"] * 2 + ["slow"]  # 8% of requests: 5% 429, 2% 500, 1% slow
FAULT_PROBABILITY = 0.08


class Skills(BaseModel):
    skills: list[str]
    answer: str


def _cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument(
        "--stock-server",
        action="store_true",
        help="run the test server with the stdlib socket defaults (Nagle on: +40 ms per "
        "answer; listen backlog 5: the first burst of connections times out)",
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="count the one-time import of openai and instructor in the wall time",
    )
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args()

    # The server runs in its own process, as a provider would: the client's CPU time
    # (HTTP, JSON, validation) must not share a GIL with the server's.
    ctx = multiprocessing.get_context("spawn")
    port_q = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(
        target=_serve,
        args=(port_q, stop, args.latency, args.timeout * 3, not args.stock_server),
        daemon=True,
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
        import_s = 0.0
        if not args.cold:
            # A process imports the SDKs once (about 1.2 s on 2 cores); that is not a
            # per-call cost, so it is measured here and reported apart from the wall time.
            t_imp = time.perf_counter()
            _warm_sdk()
            import_s = time.perf_counter() - t_imp
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        results = client.complete_many(requests)
        wall = time.perf_counter() - t0
        cpu = _cpu_s() - cpu0
        ok = sum(r.error is None for r in results)
        failed = sum(r.error is not None for r in results)
        # Read back through a fresh connection: only what was committed counts.
        cache = CallCache(Path(tmp) / "calls.sqlite")
        stored = sum(1 for r in results if r.error is None and cache.get(r.call_id) is not None)
        failures_recorded = len({f.call_id for f in cache.failures()})
        lost = args.calls - stored - failures_recorded
        stop.set()
        stats = port_q.get(timeout=30)
        server.join(timeout=10)

    ideal = args.concurrency / args.latency
    kinds = stats["faults_by_kind"]
    # Slot-seconds the injected faults cost at the very least: a 429/500 answers after the
    # full latency; a slow answer holds its slot until the client's timeout.
    fault_slot_s = (kinds.get("429", 0) + kinds.get("500", 0)) * args.latency + kinds.get(
        "slow", 0
    ) * args.timeout
    useful_slot_s = args.calls * args.latency
    min_wall = (useful_slot_s + fault_slot_s) / args.concurrency
    ceiling = args.calls / min_wall / ideal
    share = args.calls / wall / ideal
    adjusted = args.calls / (wall - fault_slot_s / args.concurrency) / ideal
    lat = sorted(r.latency_s for r in results if r.error is None and not r.cached)
    figures = {
        "calls": args.calls,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "timeout_s": args.timeout,
        "server": "stock" if args.stock_server else "nodelay+backlog128",
        "import_s": round(import_s, 2),
        "server_requests": stats["requests"],
        "faults": stats["faults"],
        "faults_by_kind": kinds,
        "succeeded": ok,
        "failed_after_retries": failed,
        "persisted": stored,
        "lost": lost,
        "wall_s": round(wall, 2),
        "throughput_per_s": round(args.calls / wall, 1),
        "ideal_per_s": ideal,
        "share_of_limit": round(share, 4),
        "fault_slot_s": round(fault_slot_s, 1),
        "ceiling_share": round(ceiling, 4),
        "share_excluding_fault_slots": round(adjusted, 4),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_ms_per_request": round(1000 * cpu / max(1, stats["requests"]), 2),
        "call_latency_median_s": round(statistics.median(lat), 4) if lat else None,
        "call_latency_p99_s": round(lat[int(0.99 * (len(lat) - 1))], 4) if lat else None,
        "peak_in_flight_at_server": stats["max_in_flight"],
    }
    print(f"calls={args.calls} concurrency={args.concurrency} latency={args.latency}s")
    print(
        f"server requests={stats['requests']} injected faults={stats['faults']} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items()))})"
        f"; server sockets: {figures['server']}"
    )
    print(f"succeeded={ok} failed_after_retries={failed} persisted={stored} lost={lost}")
    print(
        f"wall={wall:.1f}s throughput={args.calls / wall:.1f}/s ideal={ideal:.1f}/s "
        f"(SDK import {'inside' if args.cold else f'before the clock: {import_s:.2f}s'})"
    )
    print(
        f"call latency (last attempt) median={figures['call_latency_median_s']}s "
        f"p99={figures['call_latency_p99_s']}s; client CPU {cpu:.1f}s "
        f"({figures['client_cpu_ms_per_request']} ms/request)"
    )
    print(f"throughput share of concurrency limit = {share:.1%}")
    print(
        f"fault budget: {fault_slot_s:.1f} slot-s -> ceiling {ceiling:.1%} of the limit; "
        f"share excluding fault slots = {adjusted:.1%}"
    )
    print(f"peak in flight at server = {stats['max_in_flight']}")
    if args.json:
        print(json.dumps(figures))


def _warm_sdk() -> None:
    """Import openai and instructor, including what they import lazily on first use."""
    import instructor
    import openai

    instructor.from_openai(openai.AsyncOpenAI(api_key="warm-up", base_url="http://127.0.0.1:9"))


def _serve(port_q, stop, latency: float, slow_s: float, fixed: bool) -> None:
    """Fault-injecting server: 5% 429, 2% 500, 1% answers slower than the client timeout."""
    from tests import fake_openai_server
    from tests.fake_openai_server import FakeOpenAIServer

    # The test server has the socket settings every production server has: TCP_NODELAY
    # (the stdlib handler sends headers and body separately; with Nagle on, the body waits
    # ~40 ms for the client's delayed ACK) and a listen backlog larger than the stdlib's 5
    # (16 connections opened at once overflow it: the kernel drops the extra SYNs and the
    # client only retries them after 1 s, i.e. past its timeout). --stock-server puts the
    # stdlib defaults back, in this server process only.
    fake_openai_server._Handler.disable_nagle_algorithm = fixed
    fake_openai_server._Server.request_queue_size = 128 if fixed else 5
    with FakeOpenAIServer(
        responder=_answer,
        fault_probability=FAULT_PROBABILITY,
        fault_kinds=FAULT_KINDS,
        seed=7,
        latency_s=latency,
        slow_s=slow_s,
        retry_after="0.05",
    ) as srv:
        port_q.put((srv.port,))
        stop.wait()
        by_kind = dict(Counter(r.fault for r in srv.requests if r.fault))
        port_q.put(
            {
                "requests": len(srv.requests),
                "faults": sum(by_kind.values()),
                "faults_by_kind": by_kind,
                "max_in_flight": srv.max_in_flight,
            }
        )


def _answer(body):
    return {"skills": ["Reasoning", "Arithmetic", "Adding"], "answer": "A"}


if __name__ == "__main__":
    main()
