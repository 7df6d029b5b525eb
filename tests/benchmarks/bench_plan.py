"""Planner sweep speed: 3 models × 6 hardware × 4 TP × 7 batches × 2 contexts = 1,008 configurations.

Each configuration is real: graphs from ``workloads.build``, footprint, and
``simulate`` of the decode step and the prefill (``engine="auto"``: the closed-form
fast path whenever the graph is a single-stream chain). What makes it fast is reuse:
one graph build per (model, phase, batch, context) shared by all hardware and TP
degrees, one prefill simulation shared by every context, no simulation at all for a
configuration that does not fit, and ``workers`` processes. Graph and prefill caches
are cleared before each repeat so every repeat pays for its builds.
"""

from __future__ import annotations

import os
import statistics
import time

MODELS = ["qwen2.5-0.5b", "llama-3.1-8b", "mistral-7b"]
HARDWARE = ["h100-sxm", "h200", "a100-80gb", "l40s", "l4", "gh200"]
TP = [1, 2, 4, 8]
BATCH = [1, 2, 4, 8, 16, 32, 64]
CONTEXT = [2048, 8192]


def _sweep(workers: int) -> tuple[float, int, int]:
    from roofsim.planner import evaluate, plan

    evaluate.clear_caches()
    t0 = time.perf_counter()
    df = plan(MODELS, HARDWARE, tp=TP, batch=BATCH, context=CONTEXT, slo_tpot_ms=50, workers=workers, progress=False)
    return time.perf_counter() - t0, len(df), int(df["fits"].sum())


def run() -> list[dict]:
    repeats = int(os.environ.get("BENCH_PLAN_REPEATS", "3"))
    workers = int(os.environ.get("BENCH_PLAN_WORKERS", str(min(2, os.cpu_count() or 1))))
    rows = []
    for w in sorted({1, workers}):
        times, n, feasible = [], 0, 0
        for _ in range(repeats):
            dt, n, feasible = _sweep(w)
            times.append(dt)
        med = statistics.median(times)
        note = f"{n} configurations ({feasible} simulated, rest infeasible), workers={w}, median of {repeats}"
        rows.append({"benchmark": f"plan sweep wall time, workers={w}", "value": med, "unit": "s", "note": note})
        rows.append({"benchmark": f"plan sweep rate, workers={w}", "value": n / med, "unit": "configs/s", "note": note})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
