"""Simulator speed: simpy engine and fast path kernels/s, and a 70B TP-8 decode step.

Kernels/s counts kernel launches replayed per wall-clock second by the engine alone
(op costs precomputed once with ``graph_costs``, as ``simulate`` does). Medians over
repeats; this machine is shared, so treat figures as rough.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> list[dict]:
    from hw_models import catalog
    from simulator import simulate
    from simulator.costmodel import graph_costs
    from simulator.engine import build_engine_plan, run_simpy
    from simulator.fastpath import run_fast
    from simulator.placement import Placement
    from workloads import build
    from workloads.tensor_parallel import shard

    rows = []
    sys_ = catalog.load("h100-sxm")
    g = build("llama-3.1-8b", phase="decode", batch=1, context=2048)
    eplan = build_engine_plan(g, sys_, graph_costs(g, sys_, Placement()), "eager")
    k = g.kernels
    t = _median_time(lambda: run_simpy(eplan), 5)
    rows.append({"benchmark": "simpy engine, single stream", "value": k / t, "unit": "kernels/s",
                 "note": f"llama-3.1-8b decode b1 ({k} kernels, {len(g)} ops) on h100-sxm, {t * 1e3:.1f} ms"})
    t = _median_time(lambda: run_fast(eplan), 20)
    rows.append({"benchmark": "fast path", "value": k / t, "unit": "kernels/s",
                 "note": f"same graph, {t * 1e6:.0f} us"})

    big = shard(build("llama-3.1-70b", phase="decode", batch=64, context=8192), 8)
    pre = build_engine_plan(big, sys_, graph_costs(big, sys_, Placement(weights="host", prefetch=True)), "eager",
                     Placement(weights="host", prefetch=True))
    t = _median_time(lambda: run_simpy(pre), 3)
    rows.append({"benchmark": "simpy engine, prefetch + contention", "value": big.kernels / t, "unit": "kernels/s",
                 "note": f"llama-3.1-70b decode b64 tp8, weights in host memory with prefetch ({len(pre.copies)} copies)"})

    t0 = time.perf_counter()
    g70 = build("llama-3.1-70b", phase="decode", batch=64, context=8192)
    t_build = time.perf_counter() - t0
    rows.append({"benchmark": "build llama-3.1-70b decode b64 ctx8192", "value": t_build, "unit": "s",
                 "note": "tracer (cached after the first call in a process)"})
    t = _median_time(lambda: simulate(g70, sys_, tp=8), 3)
    rows.append({"benchmark": "simulate llama-3.1-70b decode tp8 b64 ctx8192, no trace", "value": t, "unit": "s",
                 "note": "shard + graph_costs + engine + SimResult (graph already built)"})
    with TemporaryDirectory() as d:
        path = Path(d) / "trace.json"
        t = _median_time(lambda: simulate(g70, sys_, tp=8).to_perfetto(path), 3)
        size = path.stat().st_size
    rows.append({"benchmark": "simulate llama-3.1-70b decode tp8 b64 ctx8192, with trace", "value": t, "unit": "s",
                 "note": f"as above plus Perfetto JSON ({size / 1e6:.1f} MB)"})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
