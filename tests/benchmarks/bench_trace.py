"""Seconds to trace one decode step (batch 1, context 4096): median of 3 repeats.

The first, untimed build of each model warms the meta-model cache, as a long-lived
process (the CLI in a sweep, the planner) would; the cold figure is reported separately.
"""

from __future__ import annotations

import statistics
import time

from workloads import build, zoo

REPEATS = 3


def _time(model: str) -> float:
    t = time.perf_counter()
    build(model, "decode", batch=1, context=4096, dtype="bf16")
    return time.perf_counter() - t


def run() -> list[dict]:
    out = []
    for model in ("llama-3.1-70b", "llama-3.1-8b"):
        zoo._zoo_model.cache_clear()
        zoo._count_params_cached.cache_clear()
        cold = _time(model)
        warm = statistics.median(_time(model) for _ in range(REPEATS))
        g = build(model, "decode", batch=1, context=4096)
        note = f"decode b=1 L=4096 bf16, {len(g)} ops, {g.kernels} kernels"
        out.append({"benchmark": f"trace {model} (warm)", "value": round(warm, 4), "unit": "s",
                    "note": f"median of {REPEATS}; {note}"})
        out.append({"benchmark": f"trace {model} (cold)", "value": round(cold, 4), "unit": "s",
                    "note": f"first build in the process (imports the model code, builds the 1-layer meta model, counts parameters); {note}"})
    return out


if __name__ == "__main__":
    for row in run():
        print(row)
