"""What a prediction rests on: the share of a simulated step priced by measured numbers.

Every number of a system spec carries its ``source``. A step's time is made of terms
(``time_by_bound``), and each term is set by one number of the spec: host time by the
host's per-launch costs, a memory-bound op by its memory level's efficiency, a
compute-bound op by its unit's (or its kind's) efficiency curve, a latency-bound op by
the kernel latency, a collective by the fabric's model. ``basis`` attributes the step to
those numbers, op by op in proportion to the time each op holds the device, and sorts
their sources into classes:

=====================  =============================================================
class                  source starts with
=====================  =============================================================
``measured``           ``measured:`` (fitted to this system's own measurements)
``measured elsewhere`` ``measured elsewhere`` (another machine, or public data)
``published``          a vendor datasheet, whitepaper, specification or paper
``estimate``           ``estimate``, ``assumed``, ``plateau`` (a measured plateau
                       with an estimated roll-off) or a same-as rule
``what-if``            ``what-if`` (a user's change)
=====================  =============================================================

So a user reads, beside each prediction, how much of it rests on measured numbers and
how much on guesses. It says nothing of how well the model composes them: that is what
``roofsim validate`` measures.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hw_models.resource_id import parse_bound
from hw_models.spec import SystemSpec
from workloads.op import LIBRARY_KINDS

from .params import unit_label

CLASSES = ("measured", "measured elsewhere", "published", "estimate", "what-if")
#: a share under this reads as 0% and is left out of a description
SHOWN = 0.005


def measured_share(shares: dict[str, float]) -> float:
    """The part of a step set by measured numbers, on this system or elsewhere."""
    return shares.get("measured", 0.0) + shares.get("measured elsewhere", 0.0)


def describe(shares: dict[str, float]) -> str:
    """``shares`` as one phrase: "86% estimate, 14% measured elsewhere"."""
    return ", ".join(f"{v:.0%} {k}" for k, v in shares.items() if v >= SHOWN)


def source_class(source: str) -> str:
    s = source.strip().lower()
    if s.startswith("measured elsewhere"):
        return "measured elsewhere"
    if s.startswith("measured"):
        return "measured"
    if s.startswith("what-if"):
        return "what-if"
    if s.startswith(("estimate", "assumed", "plateau", "as ", "same ")):
        return "estimate"
    return "published"


def _unit_curve(system: SystemSpec, unit: str, kind: str, name: str):
    table, _, dt = unit.partition(".")
    units = system.device.matrix if table == "matrix" else system.device.vector
    u = units.get(dt)
    if u is None:
        return None
    base = name.split("::")[-1].split(".")
    base = base[1] if len(base) > 1 and base[0] in ("aten", "prims", "torch") else base[0]
    # the most specific curve the cost model would price the op with (opterms.kind_keys)
    for key in (f"{kind}.{base.strip('_')}", f"{kind}.decode", f"{kind}.prefill", kind):
        if key in u.kind_efficiency:
            return f"device.{table}.{dt}.kind_efficiency.{key}", u.kind_efficiency[key]
    return f"device.{table}.{dt}.efficiency", u.efficiency


def _device_number(system: SystemSpec, term: str, bound: str, unit: str, kind: str, name: str):
    """(spec path, quantity) of the number that sets an op's time, or None."""
    dev = system.device
    if term == "collective":
        ic = system.interconnect
        return ("interconnect.collective_latency", ic.collective_latency) if ic is not None else None
    if term == "latency" or bound == "latency":
        return "device.kernel_latency", dev.kernel_latency
    if term == "atomic":
        return "device.atomics.update_rate", dev.atomics.update_rate
    if term == "compute" and unit and unit != "pim":
        return _unit_curve(system, unit, kind, name)
    b = parse_bound(bound) if ":" in bound else None
    if b is None:
        return None
    if b.term == "memory":
        for lv in dev.memory:
            if lv.name == b.name:
                return f"device.memory.{lv.name}.efficiency", lv.efficiency
        for t in system.tiers:
            if t.name == b.name:
                return f"tiers.{t.name}.bandwidth", t.memory.bandwidth
    if b.term == "link":
        link = system.interconnect if b.name == "interconnect" else system.network if b.name == "network" else next(
            (t.link for t in system.tiers if t.name == b.name), None)
        if link is not None:
            return f"{b.name}.efficiency", link.efficiency
    return None


def _host_parts(system: SystemSpec, launch: str, launches: float, library: float):
    """The host's numbers and their weights, as its costs add up (``simulator.engine.host_costs``)."""
    h = system.host
    if launch == "graph":
        return [("host.graph_launch", h.graph_launch, 1.0), ("host.graph_node_cost", h.graph_node_cost, launches)]
    return [("host.dispatch_overhead", h.dispatch_overhead, launches), ("host.library_call", h.library_call, library)]


def _split_host(host_s: float, parts, seconds: dict, quantity: dict) -> None:
    total = sum(q.value * n for _, q, n in parts)
    for path, q, n in parts:
        if total > 0 and q.value * n > 0:
            seconds[path] += host_s * q.value * n / total
            quantity[path] = q


def _attribute(system: SystemSpec, parts, seconds: dict, quantity: dict) -> float:
    """Add each (term, bound, unit, kind, name, seconds) part to the number that set it;
    returns the seconds no number could be found for."""
    unknown = 0.0
    for term, bound, unit, kind, name, t in parts:
        if t <= 0:
            continue
        got = _device_number(system, str(term), str(bound), str(unit or ""), str(kind), str(name))
        if got is None:
            unknown += float(t)
            continue
        seconds[got[0]] += float(t)
        quantity[got[0]] = got[1]
    return unknown


def _result(step: float, seconds: dict, quantity: dict, unknown: float) -> dict[str, Any]:
    shares: dict[str, float] = defaultdict(float)
    for path, s in seconds.items():
        shares[source_class(quantity[path].source)] += s / step
    if unknown:
        shares["unattributed"] += unknown / step
    # six decimals: a share finer than a millionth of the step says nothing
    numbers = [{"number": p, "share": round(s / step, 6), "class": source_class(quantity[p].source),
                "source": quantity[p].source} for p, s in sorted(seconds.items(), key=lambda kv: -kv[1])]
    return {"shares": {k: round(shares[k], 6) for k in (*CLASSES, "unattributed") if shares.get(k)},
            "numbers": numbers}


def basis_of_terms(time_by_bound: dict[str, float], system: SystemSpec, dtype: str, launch: str = "eager",
                   kernels: float = 1.0, library: float = 0.0) -> dict[str, Any]:
    """``basis`` from a step's ``time_by_bound`` alone (a planner sweep builds no op table):
    compute is read as the GEMMs' unit for ``dtype``, memory as device main memory."""
    step = sum(time_by_bound.values())
    if step <= 0:
        return {"shares": {}, "numbers": []}
    seconds: dict[str, float] = defaultdict(float)
    quantity: dict[str, Any] = {}
    _split_host(float(time_by_bound.get("host", 0.0)), _host_parts(system, launch, kernels, library), seconds,
                quantity)
    unit = unit_label(system.device, dtype, matrix=True)
    main = system.device.main_memory.name
    terms = ((term, f"memory:{main}" if term == "memory" else term, unit, "matmul", "mm", t)
             for term, t in time_by_bound.items() if term != "host")
    return _result(step, seconds, quantity, _attribute(system, terms, seconds, quantity))


def basis(result, system: SystemSpec, launch: str = "eager") -> dict[str, Any]:
    """Shares of ``result``'s step by source class, and the numbers behind them, largest first."""
    step = result.step_time_s
    if step <= 0:
        return {"shares": {}, "numbers": []}
    seconds: dict[str, float] = defaultdict(float)
    quantity: dict[str, Any] = {}
    host_s = float(result.time_by_bound.get("host", 0.0))
    df = result.ops
    if host_s > 0:
        library = float(((df["kind"].isin(LIBRARY_KINDS)) & (df["launches"] > 0)).sum())
        _split_host(host_s, _host_parts(system, launch, float(df["launches"].sum()), library), seconds, quantity)
    device_s = step - host_s
    busy = float(df["duration_s"].sum())
    unknown = 0.0
    if busy > 0 and device_s > 0:
        # each op's share of the device's part of the step, as long as it held the device
        ops = zip(df["term"], df["bound"], df["unit"], df["kind"], df["name"],
                  df["duration_s"] / busy * device_s, strict=True)
        unknown = _attribute(system, ops, seconds, quantity)
    return _result(step, seconds, quantity, unknown)
