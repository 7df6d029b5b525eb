"""Speed of the per-op cost model on a 70B decode graph (planner sweeps call it thousands of times)."""

from __future__ import annotations

import statistics
import time


def _median(fn, repeats: int = 7) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run() -> list[dict]:
    from hw_models.catalog import load
    from simulator.costmodel import graph_costs
    from simulator.placement import Placement
    from simulator.roofline import analyze
    from workloads import build

    graph = build("llama-3.1-70b", phase="decode", batch=1, context=2048)
    systems = [load("h100-sxm"), load("h200")]
    fresh = [graph.copy() for _ in range(3)]  # the per-graph plan is cached: time new graphs
    first = _median(lambda: graph_costs(fresh.pop(), systems[0]), repeats=3)
    i = iter(range(10**9))
    warm = _median(lambda: graph_costs(graph, systems[next(i) % 2]))
    far = _median(lambda: graph_costs(graph, systems[0], Placement(weights="host")))
    table = _median(lambda: analyze(graph, systems[0]), repeats=3)
    n = len(graph)
    note = f"llama-3.1-70b decode, {n} ops"
    return [
        {"benchmark": "graph_costs first call (new graph)", "value": first * 1e3, "unit": "ms", "note": note},
        {"benchmark": "graph_costs, same graph, alternating systems", "value": warm * 1e3, "unit": "ms", "note": note},
        {"benchmark": "graph_costs per op (warm)", "value": warm / n * 1e6, "unit": "us", "note": note},
        {"benchmark": "graph_costs, weights on host", "value": far * 1e3, "unit": "ms", "note": note},
        {"benchmark": "roofline.analyze (DataFrame)", "value": table * 1e3, "unit": "ms", "note": note},
    ]
