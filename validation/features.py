"""From a measured row to the work roofsim sees: rebuild the case, trace it, cost it.

Prediction and measurement describe the same work: the harness timed ``case.make()``;
here the same callable (``case.module()``) is traced by ``workloads.trace`` and costed by
``simulator.costmodel``. Whole-model rows use ``workloads.build`` with the zoo id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from validation.harness.cases import Case

#: families whose graph is one op costed alone (a benchmark loop)
SINGLE_OP_FAMILIES = ("bandwidth", "matmul", "gemv", "elementwise", "reduction", "norm", "softmax", "attention",
                      "scatter", "dispatch", "graph", "transfer")


class PredictError(ValueError):
    user_facing = True


def case_of(row: pd.Series | dict[str, Any]) -> Case:
    params = row.get("params") or ""
    if isinstance(params, float):  # NaN from pandas
        params = ""
    return Case(
        family=str(row["family"]),
        op=str(row["op"]),
        shape=json.loads(row["shape"]),
        dtype=str(row["dtype"]),
        params=json.loads(params) if params else {},
    )


_TRACES: dict[str, Any] = {}


def _trace_cached(case_id: str, case: Case):
    from workloads.tracer import trace

    if case_id in _TRACES:
        return _TRACES[case_id]

    # scatter cases are traced on the CPU so the tracer sees the real indices (distinct targets)
    device = "cpu" if case.family == "scatter" else "meta"
    module, args, kwargs = case.module(device)
    g = _TRACES[case_id] = trace(module, args if not kwargs else kwargs)
    return g


def trace_case(case: Case):
    """The ``WorkloadGraph`` of one case (``PredictError`` if it cannot be built here)."""
    if case.family in ("model", "framework"):
        try:
            from workloads import build
        except ImportError as e:
            raise PredictError(f"whole-model rows need workloads.build ({e})") from None
        if case.id in _TRACES:
            return _TRACES[case.id]
        s = case.shape
        model = case.params["model"]
        tmp = None
        if case.family == "framework":
            import tempfile
            from pathlib import Path

            from validation.harness.models import config

            tmp = tempfile.TemporaryDirectory()
            model = str(Path(tmp.name) / "config.json")
            config(case.params["model"], tiny=True).to_json_file(model)
        try:
            g = build(
                model,
                phase=case.params.get("phase", "decode"),
                batch=s.get("batch", 1),
                context=s.get("context", 1),
                prompt=s.get("prompt", 1),
                dtype=case.dtype,
                # the harness steps HF's DynamicCache (appends by concatenation) and keeps the
                # last position's logits in prefill: trace the same work
                kv="dynamic",
                logits="last",
            )
        finally:
            if tmp is not None:
                tmp.cleanup()
        _TRACES[case.id] = g
        return g
    return _trace_cached(case.id, case)


@dataclass
class OpFeatures:
    """What the fit needs of one op: where its bytes go, its compute unit, atomics, launches."""

    launches: int
    unit: str
    flops: float
    work_flops: float  # flops inflated by wave quantisation
    demands: list[tuple[str, float]] = field(default_factory=list)  # (level name, bytes)
    updates: float = 0.0
    distinct: float = 0.0
    link_bytes: float = 0.0
    #: efficiency keys of the op, most specific first (``physics.kind_keys``)
    keys: tuple[str, ...] = ()


def op_features(graph, system, cold: bool = False) -> list[OpFeatures]:
    """Features of the kernel-launching ops of a graph, read from the cost model on ``system``."""
    from hw_models import physics
    from simulator.costmodel import MATRIX_KINDS, causal_fraction, graph_costs, op_cost

    ops = [op for op in graph.ops if op.launches > 0 and op.kind != "view"]
    if cold:
        costs = [op_cost(op, system, resident=frozenset()) for op in ops]
    elif len(ops) == 1:
        costs = [op_cost(ops[0], system)]
    else:
        by_id = {c.op_id: c for c in graph_costs(graph, system)}
        costs = [by_id[op.id] for op in ops]
    dev = system.device
    out = []
    for op, c in zip(ops, costs, strict=True):
        matrix = op.kind in MATRIX_KINDS
        wave = 1.0
        m, n = op.attrs.get("m"), op.attrs.get("n")
        if matrix and m and n:
            wave = physics.wave_factor(int(m), int(n), int(op.attrs.get("batch") or 1),
                                       int(dev.compute_units.value), dev.tile_m, dev.tile_n)
        # the FLOPs the cost model charges: a causal kernel skips the masked triangle
        flops = float(op.total_flops) * causal_fraction(op)
        demands = []
        for d in c.demands:
            if d.resource.startswith("dev"):
                demands.append((d.resource.split(".", 1)[1], float(d.bytes)))
        out.append(
            OpFeatures(
                launches=int(op.launches),
                unit=c.unit or ("matrix." if matrix else "vector.") + op.dtype,
                flops=flops,
                work_flops=flops * wave,
                demands=demands,
                updates=float(op.updates) if op.kind == "scatter" else 0.0,
                distinct=float(op.distinct_targets) if op.kind == "scatter" else 0.0,
                link_bytes=float(op.bytes) if op.kind == "transfer" else 0.0,
                keys=physics.kind_keys(op.kind, op.name),
            )
        )
    return out
