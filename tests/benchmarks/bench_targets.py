"""The speed targets of issue 13, each a median of 5 with its ratio to the figure before it.

| benchmark | target |
| --- | --- |
| cold ``roofsim simulate llama-3.1-8b --hardware h100-sxm``, warm graph cache | < 1.5 s |
| the same, cold graph cache | < 6 s |
| warm in-process ``simulate`` of llama-3.1-8b decode | < 5 ms |
| ``plan`` over the 1,008-configuration sweep, one process | >= 200 configurations/s |
| simpy engine with prefetch + contention | >= 200k kernels/s |

"Cold" means a new process (Python, imports, catalog, graph), as a user types the
command; the graph cache is ``ROOFSIM_CACHE`` pointed at a fresh temporary folder (cold)
or at one a previous run filled (warm). ``BEFORE`` holds the figures measured the same
way on this 2-core machine at the commit before issue 13 (6ade813); ratios are
speed-ups (> 1 is faster). These machines are shared: read ratios, not absolutes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
ROOT = Path(__file__).resolve().parents[2]
CMD = ["simulate", "llama-3.1-8b", "--hardware", "h100-sxm"]

#: measured at 6ade813 (before issue 13) with this file, on the 2-core development machine
BEFORE = {
    "cli_warm_cache": 5.19,
    "cli_cold_cache": 5.07,
    "simulate_8b_decode": 17.05,
    "plan_1008": 16.49,
    "simpy_contention": 71.3e3,
}


def _median(fn, repeats: int = REPEATS) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _cli(cache: str) -> None:
    env = {**os.environ, "ROOFSIM_CACHE": cache}
    subprocess.run([sys.executable, "-m", "roofsim", *CMD], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _row(key: str, name: str, value: float, unit: str, target: str, ok: bool, note: str,
         higher_is_better: bool = False) -> dict:
    before = BEFORE.get(key)
    ratio = None
    if before:
        ratio = value / before if higher_is_better else before / value
    return {"benchmark": name, "value": value, "unit": unit, "before": before, "ratio": ratio, "target": target,
            "met": ok, "note": note}


def cli_rows() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as warm:
        _cli(warm)  # fills the cache
        t = _median(lambda: _cli(warm))
    rows.append(_row("cli_warm_cache", "cold `roofsim simulate llama-3.1-8b --hardware h100-sxm`, warm graph cache",
                     t, "s", "< 1.5 s", t < 1.5, f"new process each run, median of {REPEATS}"))

    def cold() -> None:
        with tempfile.TemporaryDirectory() as d:
            _cli(d)

    t = _median(cold)
    rows.append(_row("cli_cold_cache", "same, cold graph cache", t, "s", "< 6 s", t < 6,
                     f"new process and empty ROOFSIM_CACHE each run, median of {REPEATS}"))
    return rows


def simulate_row() -> dict:
    from hw_models.catalog import load
    from simulator import simulate
    from workloads import build

    g = build("llama-3.1-8b", phase="decode", batch=1, context=2048)
    system = load("h100-sxm")
    simulate(g, system)
    t = statistics.median(_median(lambda: simulate(g, system).summary(), 20) for _ in range(REPEATS))
    return _row("simulate_8b_decode", "warm in-process `simulate` of llama-3.1-8b decode", t * 1e3, "ms", "< 5 ms",
                t < 5e-3, f"simulate(graph, system).summary(), {len(g)} ops, graph and system loaded; "
                f"median of {REPEATS} medians of 20")


def plan_row() -> dict:
    from tests.benchmarks.bench_plan import _sweep

    with tempfile.TemporaryDirectory() as d:
        old = os.environ.get("ROOFSIM_CACHE")
        os.environ["ROOFSIM_CACHE"] = d
        try:
            _sweep(1)  # traces each model once into the cache; the timed runs start from it
            times = []
            for _ in range(REPEATS):
                dt, n, feasible = _sweep(1)
                times.append(dt)
        finally:
            if old is None:
                os.environ.pop("ROOFSIM_CACHE", None)
            else:
                os.environ["ROOFSIM_CACHE"] = old
    rate = n / statistics.median(times)
    return _row("plan_1008", "`plan` over the 1,008-configuration benchmark, one process", rate, "configs/s",
                ">= 200 configs/s", rate >= 200,
                f"{n} configurations ({feasible} fit), in-process caches cleared each run, graph cache warm; "
                f"median of {REPEATS}", higher_is_better=True)


def simpy_row() -> dict:
    from hw_models import catalog
    from simulator.costmodel import graph_costs
    from simulator.engine import build_engine_plan, run_simpy
    from simulator.placement import Placement
    from workloads import build
    from workloads.tensor_parallel import shard

    sys_ = catalog.load("h100-sxm")
    pl = Placement(weights="host", prefetch=True)
    big = shard(build("llama-3.1-70b", phase="decode", batch=64, context=8192), 8)
    eplan = build_engine_plan(big, sys_, graph_costs(big, sys_, pl), "eager", pl)
    t = _median(lambda: run_simpy(eplan))
    rate = big.kernels / t
    return _row("simpy_contention", "simpy with prefetch + contention", rate, "kernels/s", ">= 200k kernels/s",
                rate >= 200e3, f"llama-3.1-70b decode b64 tp8, weights in host memory with prefetch "
                f"({len(eplan.copies)} copies, {big.kernels} kernels), engine alone; median of {REPEATS}",
                higher_is_better=True)


def run() -> list[dict]:
    return [*cli_rows(), simulate_row(), plan_row(), simpy_row()]


if __name__ == "__main__":
    for r in run():
        print(r)
