"""Predict measured rows with the real cost model / simulator and a SystemSpec.

The harness times a loop of calls. On a CPU device the thread that dispatches an op is
the one that runs it, so a call costs dispatch plus kernel for every launch; on a GPU
the host runs ahead and a steady-state loop costs the larger of the two. Whole-model
steps on a GPU go through ``simulator.simulate`` (eager launch).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import pandas as pd

from hw_models.spec import SystemSpec

from .features import PredictError, case_of, trace_case

#: share of kernel cases held out from the fit; whole-model steps are always held out
HELD_OUT_PERCENT = 30


def held_out(case_id: str, family: str) -> bool:
    if family == "model":
        return True
    if family == "framework":
        return False  # the calibration measurement of the framework's per-launch time
    return int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT


@dataclass
class Prediction:
    seconds: float
    bound: str = ""
    note: str = ""
    engine_s: float = math.nan  # simulate() step time for multi-op rows, for comparison


def _costs(graph, system: SystemSpec, cold: bool):
    from simulator.costmodel import graph_costs, op_cost

    ops = [op for op in graph.ops if op.launches > 0 and op.kind != "view"]
    if cold:
        return ops, [op_cost(op, system, resident=frozenset()) for op in ops]
    if len(ops) == 1:
        return ops, [op_cost(ops[0], system)]
    by_id = {c.op_id: c for c in graph_costs(graph, system)}
    return ops, [by_id[op.id] for op in ops]


def predict_case(case, system: SystemSpec) -> Prediction:
    host = system.host
    if case.family == "transfer":
        from hw_models import physics

        if not system.tiers:
            raise PredictError(f"spec {system.id!r} has no host tier/link for transfer rows")
        nbytes = case.work()["bytes"]
        link = system.tiers[0].link
        return Prediction(physics.link_time(nbytes, link), "link:host")
    graph = trace_case(case)
    ops, costs = _costs(graph, system, bool(case.params.get("cold")))
    if not ops:
        raise PredictError(f"{case.id}: traced no kernel-launching op")
    launches = sum(op.launches for op in ops)
    kern = math.fsum(c.time_s for c in costs)
    in_model = case.family in ("model", "framework")
    per_launch = host.dispatch_overhead if in_model or host.op_dispatch is None else host.op_dispatch
    disp = launches * per_launch.value
    bounds: dict[str, float] = {}
    for c in costs:
        bounds[c.bound] = bounds.get(c.bound, 0.0) + c.time_s
    bound = max(bounds, key=bounds.get) if bounds else ""
    cpu = system.device.kind == "cpu"
    if case.family == "graph":
        node = host.graph_node_cost.value
        return Prediction(max(node, kern / max(launches, 1)), bound)
    if in_model:
        engine_s = math.nan
        try:
            from simulator import simulate

            engine_s = float(simulate(graph, system, launch="eager").step_time_s)
        except Exception as e:  # the engine's view is a comparison column only
            if not getattr(e, "user_facing", False):
                raise
        if cpu:
            return Prediction(kern + disp, bound, "cpu: dispatch + kernels in series", engine_s)
        return Prediction(engine_s, bound, "simulate(launch=eager)", engine_s)
    if cpu:
        return Prediction(kern + disp, bound)
    return Prediction(max(kern, disp), bound)


def predict_frame(df: pd.DataFrame, system: SystemSpec, only_held_out: bool = False) -> pd.DataFrame:
    """Rows of ``df`` (status ok) with ``predicted_s``, ``ape``, ``held_out``, ``bound``, ``note``."""
    out = []
    for _, r in df.iterrows():
        if str(r.get("status", "")) != "ok":
            continue
        ho = held_out(r["case_id"], r["family"])
        if only_held_out and not ho:
            continue
        rec = {
            "case_id": r["case_id"],
            "family": r["family"],
            "kind": r["kind"],
            "measured_s": float(r["median_s"]),
            "p10_s": float(r.get("p10_s", math.nan)),
            "p90_s": float(r.get("p90_s", math.nan)),
            "held_out": ho,
        }
        try:
            p = predict_case(case_of(r), system)
            rec.update(predicted_s=p.seconds, bound=p.bound, note=p.note, engine_s=p.engine_s)
        except PredictError as e:
            rec.update(predicted_s=math.nan, bound="", note=f"not predicted: {e}", engine_s=math.nan)
        out.append(rec)
    res = pd.DataFrame(out)
    if len(res):
        res["ape"] = (res["predicted_s"] / res["measured_s"] - 1.0).abs()
        res["signed_err"] = res["predicted_s"] / res["measured_s"] - 1.0
    return res
