"""Per-op cost: how long one op takes alone on one device, and what bounds it.

``op_cost`` turns an ``Op`` into an ``OpCost``: compute seconds, byte demands on named
resources (memory levels, tier memories, link directions, PIM banks, the device fabric),
fixed latency, atomic and PIM terms. The uncontended duration is

    time_s = fixed_s + max(compute_s, max_d(bytes_d / bandwidth_d), atomic_s, pim_s)

and ``bound`` names the largest term. The engine shares each resource's bandwidth among
concurrent ops using ``Demand.bandwidth`` (the effective rate this op would get alone).
``roofline_s`` is the pure roofline bound: FLOPs / peak and bytes / peak bandwidth at each
resource, with no efficiency, quantisation or latency, so it never exceeds ``time_s``.

Where an op's bytes come from (the rules, in order):

* weights and KV cache come from the tier ``Placement`` puts them in. On the device that
  is main memory (HBM/DRAM) unless the tensor is cache-resident (see below). In a far
  tier the bytes load ``"{tier}.mem"`` and cross ``"{tier}.link.h2d"`` (reads) or
  ``"{tier}.link.d2h"`` (writes); the op is bound by the slower, plus the link latency.
  With ``prefetch`` a copy stream has already brought them to device memory (not
  from PIM tiers, whose weights are computed on in place).
* activations (and outputs) on the device follow ``serving_level``: the op's cache
  working set (its activation bytes plus any resident inputs, wherever placed) must fit
  in a cache level and the tensor must be fresh (written recently enough that the bytes
  moved since have not evicted it, judged against the largest cache level); then the
  nearest cache level holding the working set serves it, else main memory. Levels
  private to one compute unit on a GPU (L1) do not keep data between kernels and are
  skipped (``PERSISTENT_CACHE_FROM``). Writes that land in a cache are not charged a
  later write-back to main memory.
* ``op_cost`` alone treats the op as its own replayed graph (a benchmark loop): inputs
  are warm iff the op's working set fits in a cache (``resident=frozenset()`` asks for a
  cold run). ``graph_costs`` tracks freshness along the program order with a
  stack-distance rule (``residency``).

Kinds: matrix kinds (``MATRIX_KINDS``) use ``matrix[dtype]`` with tile/wave quantisation
when the op carries ``m``/``n``; the rest use ``vector[dtype]`` (fallback rule in
``physics.compute_unit``), at the unit's per-kind efficiency curve when it lists one
(``ComputeUnit.kind_efficiency``). Causal attention computes only its visible triangle
(``causal_fraction``). Views cost nothing. Scatter adds the atomic term. GEMV-like
ops whose weights sit in a PIM tier run there. Collectives run on the interconnect
(ring, or a tree for small all-reduces when that is faster, as NCCL picks). Ops with
``unknown=True`` still get a time from their bytes, flagged.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from hw_models import physics
from hw_models.spec import DTYPES, SystemSpec
from workloads.op import Op

from .placement import DEVICE, Placement

#: kinds that run on the matrix engines (tensor cores, AMX); flash attention and
#: expert GEMMs are matrix work too
MATRIX_KINDS = frozenset({"matmul", "gemv", "conv", "attention", "moe"})

#: a matmul with at most this many rows is GEMV-like (decode at small batch) and may run on PIM
PIM_GEMV_MAX_M = 8

#: index of the first memory level that keeps data between kernels, per device kind: a
#: GPU's L1 is private to one SM and not reused across launches; a CPU core's L1/L2 are,
#: because an op's threads see the same partition as the op before
PERSISTENT_CACHE_FROM = {"gpu": 1, "cpu": 0}

_ACT_ROLES = ("activation", "output")


@dataclass(slots=True)
class Demand:
    """``bytes`` this op moves through ``resource`` at ``bandwidth`` B/s when it runs alone."""

    resource: str
    bytes: float
    bandwidth: float
    #: the bound label this demand gives when it dominates ("memory:hbm", "link:host", "pim")
    bound: str = ""
    #: peak bandwidth without efficiency (for the roofline bound)
    peak_bandwidth: float = 0.0

    @property
    def time_s(self) -> float:
        return self.bytes / self.bandwidth if self.bytes > 0 else 0.0


@dataclass(slots=True)
class OpCost:
    op_id: int
    compute_s: float = 0.0
    demands: list[Demand] = field(default_factory=list)
    fixed_s: float = 0.0
    atomic_s: float = 0.0
    pim_s: float = 0.0
    time_s: float = 0.0
    bound: str = "none"
    roofline_s: float = 0.0
    #: the op's cost rule was unknown (time comes from its bytes only), or a needed spec is missing
    unknown: bool = False
    flops: float = 0.0
    bytes: float = 0.0
    launches: int = 0
    #: which compute unit ran it ("matrix.bf16", "vector.fp32", "pim", "")
    unit: str = ""

    @property
    def memory_s(self) -> float:
        return max((d.time_s for d in self.demands), default=0.0)

    def demand(self, resource: str) -> Demand | None:
        for d in self.demands:
            if d.resource == resource:
                return d
        return None


# -- per-system constants ---------------------------------------------------------------


class _Derived:
    """Numbers derived from a system for one device, computed once per ``graph_costs`` call."""

    __slots__ = ("system", "device", "d", "levels", "curves", "main", "cache_levels", "llc", "tiers", "units",
                 "kernel_latency", "cu")

    def __init__(self, system: SystemSpec, d: int) -> None:
        dev = system.device
        self.system = system
        self.device = dev
        self.d = d
        # (resource, label, bandwidth, curve, capacity)
        self.levels = [(f"dev{d}.{lv.name}", f"memory:{lv.name}", lv.bandwidth.value, lv.efficiency,
                        lv.capacity.value) for lv in dev.memory]
        self.curves = {lv[0]: lv[3] for lv in self.levels}
        self.main = len(dev.memory) - 1
        self.cache_levels = cache_levels(system.device)
        self.llc = max((c for _, c in self.cache_levels), default=0.0)
        self.tiers = {t.name: t for t in system.tiers}
        self.units: dict[tuple[str, bool], tuple] = {}
        self.kernel_latency = dev.kernel_latency.value
        self.cu = int(dev.compute_units.value)

    def unit(self, dtype: str, matrix: bool):
        key = (dtype, matrix)
        u = self.units.get(key)
        if u is None:
            u = self.units[key] = physics.compute_unit(self.device, dtype, matrix)
        return u


def cache_levels(device) -> list[tuple[int, float]]:
    """(index, capacity) of the device's cache levels that keep data between ops, nearest first.

    Hierarchy order, not capacity order: on a server CPU the per-core L2s together can
    hold more than the shared L3 (Sapphire Rapids: 112 MB of L2, 105 MB of L3), and a
    working set that fits them is served by L2.
    """
    start = PERSISTENT_CACHE_FROM.get(device.kind, 0)
    return [(i, device.memory[i].capacity.value) for i in range(start, len(device.memory) - 1)]


def serving_level(levels: list[tuple[int, float]], main: int, working_set: float, fresh: bool) -> int:
    """THE cache rule: index of the memory level that serves one activation access.

    A fresh tensor (just produced, not yet evicted) in an op whose cache working set
    fits in the cache is served by the nearest persistent cache level that holds the
    whole working set; everything else comes from main memory (``main``).
    ``levels`` is ``cache_levels(device)``.
    """
    if fresh:
        for i, cap in levels:
            if working_set <= cap:
                return i
    return main


# -- freshness along a graph --------------------------------------------------------------


def residency(ops: Iterable[Op], llc_bytes: float) -> dict[int, frozenset[str]]:
    """op id -> ids of the tensors it reads that are still in the last-level cache.

    Stack-distance rule: a tensor written by an earlier op is resident if the bytes moved
    by the ops in between (on the same device) fit in the LLC, and that write covered at
    least the bytes now read (appending one token to a KV cache does not bring the whole
    cache in). A tensor no op in the graph writes (weights, inputs) is resident only if
    the whole graph's traffic fits in the LLC, i.e. the step replays warm, as a benchmark
    loop does. Views move no bytes and their outputs alias their first input.
    """
    ops = list(ops)
    total: dict[int, float] = {}
    for op in ops:
        if op.kind != "view":
            total[op.device] = total.get(op.device, 0.0) + op.bytes
    cum: dict[int, float] = {}
    # (device, tensor) -> (traffic counter when written, bytes written)
    written: dict[tuple[int, str], tuple[float, float]] = {}
    out: dict[int, frozenset[str]] = {}
    for op in ops:
        dv = op.device
        now = cum.get(dv, 0.0)
        warm = total.get(dv, 0.0) <= llc_bytes
        res = set()
        for a in op.reads:
            w = written.get((dv, a.tensor))
            if w is None:
                if warm:
                    res.add(a.tensor)
            elif now - w[0] <= llc_bytes and a.bytes <= w[1]:
                res.add(a.tensor)
        out[op.id] = frozenset(res)
        if op.kind == "view":
            src = written.get((dv, op.reads[0].tensor)) if op.reads else None
            if src is not None:
                for a in op.writes:
                    written[(dv, a.tensor)] = (src[0], max(src[1], a.bytes))
            continue
        now += op.bytes
        cum[dv] = now
        for a in op.writes:
            written[(dv, a.tensor)] = (now, a.bytes)
    return out


# -- the cost of one op -------------------------------------------------------------------


def _flop_items(op: Op):
    for k, f in op.flops.items():
        if f > 0:
            yield (k if k in DTYPES else op.dtype), float(f)


_COLL_RE = re.compile(r"(all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|broadcast)", re.I)


def _collective_spec(op: Op) -> tuple[str | None, int]:
    a = op.attrs
    kind = a.get("collective") or a.get("op")
    if not kind:
        m = _COLL_RE.search(op.name)
        kind = m.group(1) if m else None
    n = int(a.get("n") or a.get("world_size") or a.get("ranks") or a.get("tp") or 1)
    return kind, n


def _is_pim_op(op: Op, dv: _Derived, pl: Placement) -> str | None:
    """The PIM tier name if ``op`` is GEMV-like and its weights sit in a PIM tier that does its dtype."""
    if op.kind == "gemv":
        pass
    elif op.kind == "matmul":
        m = op.attrs.get("m")
        if m is None or m > PIM_GEMV_MAX_M:
            return None
    else:
        return None
    where = pl.tier_of("weight")
    t = dv.tiers.get(where)
    if t is None or t.kind != "pim" or t.pim is None or op.dtype not in t.pim.dtypes:
        return None
    if not any(a.role == "weight" for a in op.reads):
        return None
    return where


def causal_fraction(op: Op) -> float:
    """Share of an attention op's dense FLOPs a causal kernel computes.

    The tracer counts the full ``sq x skv`` square (``attrs['causal']`` set); flash/SDPA
    kernels skip the masked tiles. With ``sq == skv`` (prefill) query ``i`` sees keys
    ``0..i``: ``sq (sq + 1) / 2`` of ``sq^2`` scores, ``(sq + 1) / (2 sq)``. Decode
    (``sq = 1`` against the whole cache) and non-causal attention keep the full count.
    """
    a = op.attrs
    if op.kind != "attention" or not a.get("causal"):
        return 1.0
    sq, skv = int(a.get("sq") or 0), int(a.get("skv") or 0)
    if sq <= 1 or sq != skv:
        return 1.0
    return (sq + 1) / (2.0 * sq)


def _cost(op: Op, dv: _Derived, pl: Placement, resident: Collection[str] | None) -> OpCost:
    c = OpCost(op_id=op.id, launches=op.launches, unknown=bool(op.unknown or op.kind == "unknown"))
    if op.kind == "view":
        c.launches = 0  # a view launches no kernel, whatever the tracer wrote
        return c
    c.flops = op.total_flops
    c.bytes = float(op.bytes)
    fixed = op.launches * dv.kernel_latency
    roof = 0.0
    # resource -> [bytes, effective bandwidth or None (device level: from curve), label, peak bw]
    dem: dict[str, list] = {}

    def add(resource: str, nbytes: float, bw: float | None, label: str, peak: float, roof_bytes: float) -> None:
        e = dem.get(resource)
        if e is None:
            dem[resource] = [nbytes, bw, label, peak, roof_bytes]
        else:
            e[0] += nbytes
            e[4] += roof_bytes

    crossed: set[str] = set()

    def far(tier_name: str, nbytes: float, read: bool) -> None:
        t = dv.tiers[tier_name]
        add(f"{tier_name}.mem", nbytes, t.bandwidth.value, f"memory:{tier_name}", t.bandwidth.value, nbytes)
        link = t.link
        add(f"{tier_name}.link.{'h2d' if read else 'd2h'}", physics.link_wire_bytes(nbytes, link),
            physics.link_bandwidth(link), f"link:{tier_name}", link.bandwidth.value, nbytes)
        crossed.add(tier_name)

    pim_tier = _is_pim_op(op, dv, pl)
    kind = op.kind

    if kind == "transfer":
        _transfer(op, dv, pl, add, far)
    elif kind == "collective":
        ckind, n = _collective_spec(op)
        size = float(op.attrs.get("bytes") or op.bytes_read or op.bytes_written)
        link = dv.system.interconnect
        if link is None and dv.system.num_devices > 1 and dv.system.tiers:
            link = dv.system.tiers[0].link  # no fabric: collectives bounce through the host link
        try:
            physics.collective_kind(ckind or "")
        except physics.PhysicsError:
            ckind = None
        if ckind is None or link is None:
            c.unknown = c.unknown or n > 1  # priced by its bytes alone, and flagged
        else:
            algo = physics.collective_algorithm(ckind, size, n, link)
            traffic, steps = physics.collective_terms(ckind, n, algo)
            if traffic > 0:
                add(f"interconnect.{dv.d}", traffic * size, link.bandwidth.value * link.efficiency.value,
                    "link:interconnect", link.bandwidth.value, traffic * size)
                fixed += steps * link.latency.value

    if kind != "transfer":
        # route every access; device-side cache candidates are settled after the working set is known
        cand: list[tuple[float, bool | None]] = []
        ws = 0.0
        for a in op.reads:
            ws += _route(a, True, op, dv, pl, pim_tier, resident, cand, far, add)
        for a in op.writes:
            ws += _route(a, False, op, dv, pl, pim_tier, resident, cand, far, add)
        main_bytes = sum(b for b, f in cand if f is None)
        for b, fresh in cand:
            if fresh is None:
                continue
            i = serving_level(dv.cache_levels, dv.main, ws, fresh)
            res, label, bw, _curve, _cap = dv.levels[i]
            add(res, b, None, label, bw, b)
        if main_bytes:
            res, label, bw, _curve, _cap = dv.levels[dv.main]
            add(res, main_bytes, None, label, bw, main_bytes)

    # compute
    if pim_tier is not None:
        pim = dv.tiers[pim_tier].pim
        wbytes = float(sum(a.bytes for a in op.reads if a.role == "weight"))
        c.pim_s = physics.pim_time(c.flops, wbytes, pim)
        roof = max(roof, c.flops / pim.peak.value)
        c.unit = "pim"
        # the activations travel to the PIM units and the result comes back
        act_in = float(sum(a.bytes for a in op.reads if a.role != "weight"))
        link = dv.tiers[pim_tier].link
        if act_in:
            add(f"{pim_tier}.link.d2h", physics.link_wire_bytes(act_in, link), physics.link_bandwidth(link),
                f"link:{pim_tier}", link.bandwidth.value, act_in)
        if op.bytes_written:
            add(f"{pim_tier}.link.h2d", physics.link_wire_bytes(op.bytes_written, link),
                physics.link_bandwidth(link), f"link:{pim_tier}", link.bandwidth.value, op.bytes_written)
        crossed.add(pim_tier)
    elif kind not in ("transfer", "collective"):
        matrix = kind in MATRIX_KINDS
        a = op.attrs
        m, n = (a.get("m"), a.get("n")) if matrix else (None, None)
        batch = int(a.get("batch") or 1)
        keys = physics.kind_keys(kind, op.name)
        share = causal_fraction(op)
        for dt, f in _flop_items(op):
            unit, label = dv.unit(dt, matrix)
            f *= share
            c.compute_s += physics.compute_time(f, unit, m=m, n=n, batch=batch, compute_units=dv.cu,
                                                tile_m=dv.device.tile_m, tile_n=dv.device.tile_n, kind=keys)
            roof += f / unit.peak.value
            c.unit = c.unit or label

    if kind == "scatter":
        c.atomic_s = physics.atomic_time(op.updates, op.distinct_targets, dv.device.atomics)

    for t in crossed:
        fixed += physics.link_latency(dv.tiers[t].link)

    # settle demands: device levels take their efficiency at the bytes they move
    for res, (nbytes, bw, label, peak, roof_bytes) in dem.items():
        if nbytes <= 0:
            continue
        if bw is None:
            bw = peak * physics.efficiency(dv.curves[res], nbytes)
        c.demands.append(Demand(res, nbytes, bw, label, peak))
        roof = max(roof, roof_bytes / peak)

    c.fixed_s = fixed
    best, bound = c.compute_s, "compute"
    for d in c.demands:
        t = d.time_s
        if t > best:
            best, bound = t, d.bound
    if c.atomic_s > best:
        best, bound = c.atomic_s, "atomic"
    if c.pim_s > best:
        best, bound = c.pim_s, "pim"
    if best <= 0 and fixed <= 0:
        bound = "none"
    elif fixed > best:
        bound = "latency"
    c.bound = bound
    c.time_s = fixed + best
    c.roofline_s = roof
    return c


def _route(a, read: bool, op: Op, dv: _Derived, pl: Placement, pim_tier, resident, cand, far, add) -> float:
    """Send one access to a far tier, to PIM banks, or onto the device list ``cand``.

    ``cand`` gets (bytes, fresh) for device cache candidates and (bytes, None) for
    device main-memory traffic. Returns the bytes the access adds to the op's cache
    working set: activations, outputs and resident inputs count wherever they are
    placed, so moving a tensor to a far tier never frees cache for the rest (a far
    placement is then never faster than a device one).
    """
    role = a.role
    nbytes = float(a.bytes)
    if nbytes <= 0:
        return 0.0
    if role in _ACT_ROLES:
        cacheable, fresh = True, (not read) or resident is None or a.tensor in resident
    elif read and (resident is None or a.tensor in resident):
        # resident=None: alone in a benchmark loop, warm iff the working set fits the LLC
        cacheable, fresh = True, True
    else:
        cacheable, fresh = False, False
    ws = nbytes if cacheable else 0.0
    where = pl.tier_of(role)
    if read and role == "weight" and pim_tier is not None:
        pim = dv.tiers[pim_tier].pim
        add(f"pim.{pim_tier}", nbytes, pim.internal_bandwidth.value, "pim", pim.internal_bandwidth.value, nbytes)
        return ws
    if where != DEVICE and pl.prefetch and role in ("weight", "kv_cache") and dv.tiers[where].kind != "pim":
        # a copy stream staged it in device memory (the engine prices the copy); PIM
        # memory is computed on in place, never staged
        where = DEVICE
    if where != DEVICE:
        far(where, nbytes, read)
    else:
        cand.append((nbytes, fresh if cacheable else None))
    return ws


def _transfer(op: Op, dv: _Derived, pl: Placement, add, far) -> None:
    """A copy between a far tier and device memory: tier memory, one link direction, device main memory."""
    a = op.attrs
    size = float(a.get("bytes") or max(op.bytes_read, op.bytes_written))
    src, dst = a.get("src"), a.get("dst")
    tier, direction = a.get("tier"), a.get("direction")
    if tier is None and (src or dst):
        if src and src not in (DEVICE, dv.device.main_memory.name):
            tier, direction = src, "h2d"
        elif dst and dst not in (DEVICE, dv.device.main_memory.name):
            tier, direction = dst, "d2h"
    if tier is None:
        far_roles = [pl.tier_of(r) for r in ("weight", "kv_cache", "activation")]
        tier = next((t for t in far_roles if t != DEVICE), None) or (dv.system.tiers[0].name if dv.system.tiers else None)
    res, label, bw, _curve, _cap = dv.levels[dv.main]
    if tier is None or tier not in dv.tiers:
        # no tier to cross: a device-local copy reads and writes main memory
        add(res, 2 * size, None, label, bw, 2 * size)
        return
    far(tier, size, (direction or "h2d") == "h2d")
    add(res, size, None, label, bw, size)


# -- public API ---------------------------------------------------------------------------


def op_cost(op: Op, system: SystemSpec, placement: Placement | None = None, device_index: int = 0, *,
            resident: Collection[str] | None = None) -> OpCost:
    """Uncontended cost of ``op`` on device ``device_index`` of ``system``.

    ``resident``: ids of input tensors still in the last-level cache (``residency``
    computes them along a graph). ``None`` treats the op as its own replayed graph, as a
    benchmark loop runs it: inputs are warm iff the op's working set fits in the LLC.
    """
    pl = (placement or Placement()).validate(system)
    return _cost(op, _Derived(system, device_index), pl, resident)


def _signature(op: Op, res: frozenset[str]):
    """Everything ``_cost`` reads from an op except its id: equal signatures, equal costs.

    A 70B decode graph has ~3k ops but a few dozen distinct shapes (layers repeat), so
    ``graph_costs`` prices each shape once. Transfers and collectives read free-form attrs
    and are not memoised.
    """
    if op.kind in ("transfer", "collective"):
        return None
    a = op.attrs
    return (
        op.kind, op.name, op.dtype, tuple(op.flops.items()), a.get("m"), a.get("n"), a.get("batch"),
        a.get("causal"), a.get("sq"), a.get("skv"),
        op.launches, op.unknown, op.updates, op.distinct_targets, op.device,
        tuple((x.role, x.bytes, x.tensor in res) for x in op.reads),
        tuple((x.role, x.bytes) for x in op.writes),
    )


class _GraphPlan:
    """System-independent facts of one graph: its ops, and per LLC size the residency
    sets and shape groups. Cached per graph object, so planner sweeps over systems
    price only the distinct shapes."""

    __slots__ = ("ops", "by_llc", "__weakref__")

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.by_llc: dict[float, tuple[list[int], list[tuple[Op, frozenset[str]]]]] = {}

    def groups(self, llc: float) -> tuple[list[int], list[tuple[Op, frozenset[str]]]]:
        got = self.by_llc.get(llc)
        if got is None:
            res = residency(self.ops, llc)
            index: dict = {}
            group_of: list[int] = []
            reps: list[tuple[Op, frozenset[str]]] = []
            for op in self.ops:
                r = res[op.id]
                sig = _signature(op, r)
                gi = index.get(sig) if sig is not None else None
                if gi is None:
                    gi = len(reps)
                    reps.append((op, r))
                    if sig is not None:
                        index[sig] = gi
                group_of.append(gi)
            got = self.by_llc[llc] = (group_of, reps)
        return got


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(graph) -> _GraphPlan:
    ops = graph.ops if hasattr(graph, "ops") else list(graph)
    try:
        plan = _PLANS.get(graph)
    except TypeError:  # not weak-referenceable (a plain list of ops): no caching
        return _GraphPlan(list(ops))
    # the plan holds the op objects, so an op replaced in the graph cannot reuse an id
    if plan is None or len(plan.ops) != len(ops) or any(a is not b for a, b in zip(plan.ops, ops, strict=True)):
        plan = _PLANS[graph] = _GraphPlan(list(ops))
    return plan


def graph_costs(graph, system: SystemSpec, placement: Placement | None = None) -> list[OpCost]:
    """``op_cost`` for every op of ``graph`` in program order, with cache freshness tracked along it.

    Ops with the same shape (layers repeat) are priced once and their ``OpCost`` objects
    share one ``demands`` list: treat it as read-only. Ops are taken as immutable once
    priced: change a graph by building a new one (``graph.copy()``), not by editing ops
    in place.
    """
    pl = (placement or Placement()).validate(system)
    plan = _plan(graph)
    derived: dict[int, _Derived] = {0: _Derived(system, 0)}
    group_of, reps = plan.groups(derived[0].llc)
    priced = []
    for op, r in reps:
        dv = derived.get(op.device)
        if dv is None:
            dv = derived[op.device] = _Derived(system, op.device)
        priced.append(_cost(op, dv, pl, r))
    return [_with_id(priced[gi], op.id) for op, gi in zip(plan.ops, group_of, strict=True)]


def _with_id(c: OpCost, op_id: int) -> OpCost:
    return OpCost(op_id, c.compute_s, c.demands, c.fixed_s, c.atomic_s, c.pim_s, c.time_s, c.bound,
                  c.roofline_s, c.unknown, c.flops, c.bytes, c.launches, c.unit)


def total_time(costs: Iterable[OpCost]) -> float:
    """Sum of uncontended op times: the step time of one stream with no host overhead."""
    return math.fsum(c.time_s for c in costs)
