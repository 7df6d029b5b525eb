"""How work runs on hardware over time: ``simulate(graph, system) -> SimResult``.

The engine (``simulator.engine``) replays a ``WorkloadGraph`` on a ``SystemSpec``: a host
issuing kernels, device streams, processor-sharing bandwidth, prefetch copies. The fast
path (``simulator.fastpath``) gives the same answer in closed form for a single-stream
chain. Per-op costs come from ``simulator.costmodel.graph_costs``.

Why one long module: the entry points (``simulate``, ``simulate_point``) and the
assembly of a ``SimResult`` from the engine's timeline (totals, floors, time by bound)
that both of them share.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from hw_models.intervals import union_length
from hw_models.resource_id import ResourceId
from workloads.fusion import POLICIES
from workloads.payloads import Collective, store

from .engine import LAUNCH_MODES, WRITEBACK, EnginePlan, PerOp, Timeline, build_engine_plan, run_simpy
from .fastpath import run_fast
from .params import compute_unit, unit_label
from .resources import NO_RESOURCE
from .result import SimResult, category, quant_columns, resource_category

__all__ = ["simulate", "simulate_point", "SimResult", "SimulationError"]

ENGINES = ("auto", "simpy", "fast")


class SimulationError(ValueError):
    """Bad simulation request (engine, launch mode, TP degree); one line for the user."""

    user_facing = True


def simulate(
    graph,
    system,
    *,
    launch: str = "eager",
    tp: int = 1,
    placement=None,
    engine: str = "auto",
    cost_fn: Callable | None = None,
    params=None,
) -> SimResult:
    """Simulate one step of ``graph`` on ``system`` (a ``SystemSpec`` or catalog id / path).

    ``launch``: ``eager`` (host dispatch per kernel), ``graph`` (one replayed graph),
    ``loop`` (bare ops in a tight loop, as a benchmark calls them) or ``device`` (the
    kernels alone, as a profiler's kernel view sums them).
    ``tp``: tensor-parallel degree; the graph is sharded Megatron-style
    (``workloads.tensor_parallel``) and one representative device is simulated. Its
    collectives pay the fabric's eager or captured-graph latency by ``launch``, and a
    ``serving``-fused graph may use the fabric's custom one-shot all-reduce.
    ``placement``: a ``simulator.placement.Placement`` (default: everything on the device).
    ``engine``: ``simpy``, ``fast`` (single-stream chains only) or ``auto`` (fast when exact).
    ``cost_fn(graph, system, placement) -> list[OpCost]`` replaces the cost model (tests).
    ``params``: a ``simulator.params.Params`` to price with (default: the spec's numbers).
    """
    from hw_models.catalog import load

    from .placement import Placement

    if engine not in ENGINES:
        raise SimulationError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if launch not in LAUNCH_MODES:
        raise SimulationError(f"launch must be one of {', '.join(LAUNCH_MODES)}, got {launch!r}")
    system = load(system)
    placement = placement if placement is not None else Placement()
    if hasattr(placement, "validate"):
        placement = placement.validate(system)
    tp = int(tp)
    if tp < 1:
        raise SimulationError(f"--tp must be >= 1, got {tp}")
    if tp > 1:
        if tp > system.num_devices:
            raise SimulationError(f"tensor-parallel degree {tp} exceeds the {system.num_devices} device(s) of system {system.id!r}")
        from workloads.tensor_parallel import shard

        with gc_paused():
            graph = shard(graph, tp)
        for op in graph.ops:
            if op.kind == "collective":
                collective_mode(op, graph.meta, launch)
    from .params import Params

    params = params or Params(system)
    with gc_paused():
        if cost_fn is None:
            from .costmodel import grouped_costs

            costs = grouped_costs(graph, system, placement, params)
        else:
            per_op = list(cost_fn(graph, system, placement))
            costs = (np.arange(len(per_op), dtype=np.int64), per_op)
        eplan = build_engine_plan(graph, system, costs, launch, placement, params)
        if engine == "fast" and not eplan.chain:
            raise SimulationError("engine 'fast' needs a single-stream chain without prefetch; use 'simpy' or 'auto'")
        used = "fast" if engine == "fast" or (engine == "auto" and eplan.chain) else "simpy"
        tl = run_fast(eplan) if used == "fast" else run_simpy(eplan)
        meta = _meta(graph, system, launch, tp, placement, used)
        return assemble(graph, system, costs, eplan, tl, meta, placement, tp)


def collective_mode(op, meta: dict, launch: str) -> None:
    """How a collective of a sharded step runs: a CUDA graph keeps the ranks in lockstep
    (no launch skew); serving engines all-reduce small messages with their own one-shot kernel."""
    pol = POLICIES.get(meta.get("fusion") or "none")
    store(op, Collective(launch="graph" if launch == "graph" else "eager",
                         custom=pol is not None and pol.custom_allreduce))


def simulate_point(point, system, *, launch: str = "eager", tp: int = 1, placement=None, params=None) -> SimResult:
    """``simulate`` of one step of a parametric family (``workloads.familyarrays.FamilyPoint``,
    already sharded for ``tp``), from its arrays: the planner's sweep.

    The same model and engine as ``simulate``: ops are grouped as ``graph_costs`` groups
    them (here by family class, which implies equal shapes at every point, and cache
    residency), each group's representative op is built and priced by ``op_terms`` and
    ``evaluate``, and the chain runs on the fast path. Only single-stream steps without
    prefetch take this path (``point_supported``); the ops table is built on demand.
    """
    from hw_models.catalog import load

    from .costmodel import Structure, TermTable, costs_of, evaluate, op_terms
    from .params import Params
    from .placement import Placement

    if launch not in LAUNCH_MODES:
        raise SimulationError(f"launch must be one of {', '.join(LAUNCH_MODES)}, got {launch!r}")
    system = load(system)
    placement = (placement if placement is not None else Placement()).validate(system)
    if not point_supported(point, placement):
        raise SimulationError("simulate_point takes single-stream steps without prefetch")
    params = params or Params(system)
    fa = point.fa
    with gc_paused():
        st = Structure(system, 0)
        res = point.residency(st.llc)
        mask = np.zeros(fa.n, dtype=np.int64)
        if len(res):
            np.add.at(mask, fa.rd_op, np.where(res, np.left_shift(1, fa.rd_bit), 0))
        key = fa.cls * (1 << fa.max_reads) + mask
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # groups numbered by first appearance, as graph_costs does
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        group_of = rank[inverse.ravel()]
        terms = []
        for g in order.tolist():
            i = int(first[g])
            op = point.op(i)
            if op.kind == "collective":
                collective_mode(op, point.meta, launch)
            lo = np.searchsorted(fa.rd_op, i)
            hi = np.searchsorted(fa.rd_op, i, side="right")
            resident = frozenset(fa.acc_tensor[fa.rd_acc[r]] for r in range(lo, hi) if res[r])
            terms.append(op_terms(op, st, placement, resident))
        table = TermTable(terms)
        reps = costs_of(table, evaluate(table, params), [0] * table.n)
        costs = (group_of, reps)
        eplan = build_engine_plan(point, system, costs, launch, None, params, arrays=point)
        tl = run_fast(eplan)
        meta = _meta(point, system, launch, tp, placement, "fast")
        return assemble(point, system, costs, eplan, tl, meta, placement, tp)


def point_supported(point, placement) -> bool:
    """Whether ``simulate_point`` takes this step: one device and stream, no prefetch copies."""
    fa = point.fa
    return fa.single_lane and all(d == 0 for d, _s in fa.lanes) and not getattr(placement, "prefetch", False)


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: simulation and planner sweeps allocate many
    small long-lived objects (graphs, results), so collections would scan them again and
    again and cost up to half the wall time on big graphs, freeing nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _meta(graph, system, launch: str, tp: int, placement, engine: str) -> dict[str, Any]:
    m = graph.meta
    return {
        "model": m.get("model"),
        "hardware": system.id,
        "phase": m.get("phase"),
        "batch": m.get("batch"),
        "context": m.get("context"),
        "prompt": m.get("prompt"),
        "dtype": m.get("dtype"),
        "quant_kernel": m.get("quant_kernel"),
        "fusion": m.get("fusion", "none"),
        "launch": launch,
        "tp": tp,
        "placement": placement.describe() if hasattr(placement, "describe") else str(placement),
        "engine": engine,
    }


def _tier_bandwidth(system, tier: str) -> float:
    """Peak bandwidth at which the device reaches memory ``tier`` (see ``SimResult`` doc)."""
    if tier in ("device", system.device.main_memory.name):
        return system.device.main_memory.bandwidth.value
    t = system.tier(tier)
    if t.kind == "pim" and t.pim is not None:
        return t.pim.internal_bandwidth.value
    return min(t.bandwidth.value, t.link.bandwidth.value)


def floors(graph, system, placement, arrays=None) -> tuple[float, float]:
    """(memory_floor_s, compute_floor_s) of ``graph`` on one device of ``system``."""
    from .engine import graph_arrays

    ga = arrays if arrays is not None else graph_arrays(graph)
    bw_of: dict[str, float] = {}
    role_bw = []
    for role in ga.roles:
        t = placement.tier_of(role) if hasattr(placement, "tier_of") else "device"
        bw = bw_of.get(t) or bw_of.setdefault(t, _tier_bandwidth(system, t))
        role_bw.append(bw)
    # every byte over its tier's bandwidth, summed in program order (cumsum adds in order)
    mem = float(np.cumsum(ga.acc_bytes / np.array(role_bw)[ga.acc_code])[-1]) if len(ga.acc_code) else 0.0
    peaks = []
    for dt, op_dtype in ga.flop_pairs:
        known = dt in system.device.vector or dt in system.device.matrix
        label = unit_label(system.device, dt if known else op_dtype, True)
        peaks.append(compute_unit(system.device, label).peak.value)
    parts = ga.flop_vals / np.array(peaks)[ga.flop_pair] if len(ga.flop_vals) else ga.flop_vals
    comp = float(np.cumsum(parts)[-1]) if len(parts) else 0.0
    return mem, comp


def assemble(graph, system, costs, eplan: EnginePlan, tl: Timeline, meta: dict, placement, tp: int) -> SimResult:
    """The ``SimResult``: totals now, the per-op table when someone reads it.
    ``costs`` as ``build_engine_plan`` takes them."""
    from .engine import graph_arrays

    ga = eplan.arrays if eplan.arrays is not None else graph_arrays(graph)
    n = ga.n
    if isinstance(costs, tuple):
        group_of, reps = np.asarray(costs[0], dtype=np.int64), costs[1]
    else:
        group_of, reps = np.arange(n, dtype=np.int64), list(costs)
    # one term per shape group (a group's ops share their kind: it is part of the shape)
    kinds = ga.kinds
    _, first = np.unique(group_of, return_index=True) if n else (None, np.zeros(0, dtype=np.int64))
    gterm = [category(reps[g].bound, kinds[i]) for g, i in enumerate(first.tolist())]
    terms = PerOp(gterm, group_of.tolist())
    ends = [tl.end.max() if n else 0.0]
    if len(tl.copy_end):
        ends.append(tl.copy_end.max())
    step = float(max(max(ends), tl.host_busy))
    mem_floor, comp_floor = floors(graph, system, placement, ga)
    tbb = _time_by_bound(eplan, tl, terms, eplan.resource_names, step)
    unknown = ga.unknown | np.array([bool(getattr(reps[g], "unknown", False)) for g in range(len(reps))],
                                    dtype=bool)[group_of] if n else ga.unknown
    totals = {
        "step_time_s": step,
        "flops": ga.flops_total * tp,
        "bytes": ga.bytes_total * tp,
        "memory_floor_s": mem_floor,
        "compute_floor_s": comp_floor,
        "host_time_s": tl.host_busy,
        "device_busy_s": union_length(tl.start, tl.end),
        "kernels": ga.kernels,
        "tokens_per_s": _tokens(meta, step),
        "unknown_ops": int(unknown.sum()),
        "engine": meta["engine"],
        "placement": meta["placement"],
    }

    def ops_table() -> pd.DataFrame:
        return _ops_table(ga, group_of, reps, terms, unknown, eplan, tl)

    def copies_table() -> pd.DataFrame:
        ops = ga.ops
        return pd.DataFrame({
            "op_id": [ops[cp.op].id for cp in eplan.copies],
            "kind": ["writeback" if cp.after == WRITEBACK else "prefetch" for cp in eplan.copies],
            "resource": [cp.resource for cp in eplan.copies],
            "bytes": [float(cp.nbytes) for cp in eplan.copies],
            "start_s": tl.copy_start,
            "end_s": tl.copy_end,
        })

    return SimResult(meta, ops_table, copies_table, totals, tbb, list(eplan.lanes), list(eplan.resource_names))


#: the device unit named in the ``resource`` column of an op that moved no shared bytes, by its term
_UNIT_OF_TERM = {"compute": "compute", "atomic": "atomics"}


@functools.cache
def _unit_id(device: int, term: str) -> str:
    # one id per device and term, not one record per op of a large graph
    return str(ResourceId("unit", _UNIT_OF_TERM.get(term, "launch"), device))


def _ops_table(ga, group_of, reps, terms, unknown, eplan: EnginePlan, tl: Timeline) -> pd.DataFrame:
    ops = ga.ops
    n = ga.n
    names = eplan.resource_names
    gl = group_of.tolist()
    resource = []
    for i in range(n):
        if tl.slowed_by[i] != NO_RESOURCE:
            resource.append(names[tl.slowed_by[i]])
        elif eplan.res[i] and terms[i] in ("memory", "link", "pim", "collective"):
            k = int(np.argmax(eplan.work[i]))
            resource.append(names[eplan.res[i][k]])
        else:
            resource.append(_unit_id(ops[i].device, terms[i]))
    lanes = eplan.lanes
    qcols = [quant_columns(op) for op in ops]
    return pd.DataFrame({
        "id": [op.id for op in ops],
        "name": [op.name for op in ops],
        "kind": list(ga.kinds),
        "module": [op.module for op in ops],
        "device": [lanes[k][0] for k in eplan.lane] if n else [],
        "stream": [lanes[k][1] for k in eplan.lane] if n else [],
        "host_s": eplan.host_cost,
        "issue_s": tl.issue,
        "start_s": tl.start,
        "end_s": tl.end,
        "duration_s": tl.end - tl.start,
        "time_s": eplan.dur,
        "roofline_s": [float(reps[g].roofline_s) for g in gl],
        "bound": [reps[g].bound for g in gl],
        "unit": [reps[g].unit for g in gl],
        "term": list(terms),
        "resource": resource,
        "flops": [op.total_flops for op in ops],
        "bytes": [float(op.bytes) for op in ops],
        "launches": [op.launches for op in ops],
        "unknown": [bool(u) for u in unknown],
        # the quantised kernel family an op belongs to and its part in it (workloads.quantize)
        "quant": [q[0] for q in qcols],
        "quant_path": [q[1] for q in qcols],
    })


def _tokens(meta: dict, step: float) -> float | None:
    b = meta.get("batch")
    if not b or step <= 0:
        return None
    per_step = b * (meta.get("prompt") or 1) if meta.get("phase") == "prefill" else b
    return float(per_step / step)


def _time_by_bound_chain(eplan: EnginePlan, tl: Timeline, terms: list[str], step: float) -> dict[str, float]:
    """``_time_by_bound`` of a single-stream chain (no copies, no other lanes, nothing
    stretched), in arrays: every idle gap waits for the host. Each term's seconds are
    added in the same order as the loop adds them (``bincount`` adds in index order), so
    the figures are the loop's to the last bit."""
    tol = 1e-12
    s, e, dur = tl.start, tl.end, eplan.dur
    prev = np.maximum.accumulate(np.concatenate(([0.0], e[:-1])))
    prev = np.maximum(prev, 0.0)
    gap = s - prev
    busy = e - np.maximum(s, prev)
    on = busy > 0
    base = np.where(on, np.minimum(busy, dur), 0.0)
    extra = np.where(on & (busy > base), busy - base, 0.0)
    if isinstance(terms, PerOp):  # one term per group: code the groups, then index
        cats = ["host", *dict.fromkeys(terms.items)]
        code = {c: i for i, c in enumerate(cats)}
        tcode = np.array([code[t] for t in terms.items], dtype=np.int64)[np.asarray(terms.group_of, dtype=np.int64)]
    else:
        cats = ["host", *dict.fromkeys(terms)]
        code = {c: i for i, c in enumerate(cats)}
        tcode = np.array([code[t] for t in terms], dtype=np.int64)
    n = eplan.n
    idx = np.empty(3 * n, dtype=np.int64)
    val = np.empty(3 * n)
    live = np.empty(3 * n, dtype=bool)
    idx[0::3], idx[1::3], idx[2::3] = 0, tcode, tcode
    val[0::3] = np.where(gap > tol, gap, 0.0)
    val[1::3], val[2::3] = base, extra
    live[0::3], live[1::3], live[2::3] = gap > tol, on, extra > 0
    sums = np.bincount(idx, weights=val, minlength=len(cats))
    first = {}
    for c in range(len(cats)):
        hit = np.flatnonzero(live & (idx == c))
        if len(hit):
            first[c] = int(hit[0])
    out = {cats[c]: float(sums[c]) for c in sorted(first, key=first.get)}
    last = float(max(prev[-1], e[-1]))
    if step - last > tol:
        out["other"] = out.get("other", 0.0) + step - last
    return {k: v for k, v in out.items() if v > 0}


def _time_by_bound(eplan: EnginePlan, tl: Timeline, terms: list[str], names: list[str], step: float) -> dict[str, float]:
    if eplan.n == 0:
        return {"host": step} if step > 0 else {}
    if eplan.chain and not (tl.slowed_by != NO_RESOURCE).any():
        return _time_by_bound_chain(eplan, tl, terms, step)
    out: dict[str, float] = {}
    main = np.flatnonzero(eplan.lane == 0)
    prev = 0.0
    tol = 1e-12
    copy_end = {cp.op: tl.copy_end[k] for k, cp in enumerate(eplan.copies) if cp.after != WRITEBACK}
    for i in main.tolist():
        s, e = float(tl.start[i]), float(tl.end[i])
        gap = s - prev
        if gap > tol:
            if i in copy_end and abs(copy_end[i] - s) <= tol * max(1.0, s) + 1e-15 and tl.issue[i] < s - tol:
                why = "link"
            elif abs(tl.issue[i] - s) <= 1e-12 * max(1.0, s) + 1e-15:
                why = "host"
            else:
                deps = [d for d in eplan.deps[i] if abs(tl.end[d] - s) <= 1e-12 * max(1.0, s) + 1e-15]
                why = terms[deps[0]] if deps else "host"
            out[why] = out.get(why, 0.0) + gap
        busy = e - max(s, prev)
        if busy > 0:
            base = min(busy, float(eplan.dur[i]))
            out[terms[i]] = out.get(terms[i], 0.0) + base
            if busy > base:
                r = tl.slowed_by[i]
                t = resource_category(names[r]) if r != NO_RESOURCE else terms[i]
                out[t] = out.get(t, 0.0) + busy - base
        prev = max(prev, e)
    if step - prev > tol:
        # after the main stream's last op: copies still landing (write-backs) or other streams
        last_copy = float(tl.copy_end.max()) if len(tl.copy_end) else -1.0
        why = "link" if last_copy >= step - tol else "other"
        out[why] = out.get(why, 0.0) + step - prev
    return {k: v for k, v in out.items() if v > 0}
