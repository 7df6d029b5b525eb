"""Per-op cost: how long one op takes alone on one device, and what bounds it.

One model, in two steps, so that ``simulate`` and the calibration fit run the same code:

1. ``op_terms`` reads an ``Op`` against a system's *structure* (which memory level or
   tier its bytes come from, its tile alternatives, its collective) and lists its
   cost terms, each naming the parameter (``simulator.params``) it is priced with.
   Nothing here depends on a rate that calibration fits.
2. ``evaluate`` prices a ``TermTable`` of many ops at once with a ``Params``: numbers
   from a spec for ``simulate``, a candidate parameter vector for the fit.

The uncontended duration of an op is

    time_s = fixed_s + max(overlap_p(compute_s, memory_s), atomic_s, pim_s)

with ``memory_s`` the slowest of its byte demands; ``bound`` names the largest term.
``overlap_p`` is the p-norm of the device's ``overlap`` exponent (``physics.overlap``)
for matrix ops, whose tile pipelines overlap math and loads imperfectly, and the plain
max for streaming ops (pointwise, norms, copies), whose loads and math interleave.
The engine shares each resource's bandwidth among concurrent ops using
``Demand.bandwidth`` (the rate this op gets alone). ``roofline_s`` is the pure roofline
bound: FLOPs / peak and bytes / peak bandwidth at each resource, no efficiency,
quantisation or latency, so it never exceeds ``time_s``.

Where an op's bytes come from (the rules, in order):

* weights and KV cache come from the tier ``Placement`` puts them in. On the device that
  is main memory unless the tensor is cache-resident (below). In a far tier the bytes
  load ``"{tier}.mem"`` and cross ``"{tier}.link.h2d"`` (reads) or ``"{tier}.link.d2h"``
  (writes); the op is bound by the slower, plus the link latency. With ``prefetch`` a
  copy stream has already staged them in device memory (not from PIM tiers, whose
  weights are computed on in place).
* activations (and outputs) on the device follow ``serving_level``: the op's cache
  working set must fit in a cache level that keeps data between kernels (the level's
  ``persistent`` switch) and the tensor must be fresh; then the nearest such level
  holding the working set serves it, else main memory. Writes that land in a cache are
  not charged a later write-back.
* ``op_cost`` alone treats the op as its own replayed graph (a benchmark loop): inputs
  are warm iff its working set fits in a cache (``resident=frozenset()`` asks for a
  cold run). ``graph_costs`` tracks freshness along program order (``residency``).

Compute: matrix kinds (``workloads.op.MATRIX_KINDS``) with a GEMM shape run on ``matrix[dtype]``
with the library's best tile (``physics.gemm_tiles``: waves, padding, operand
streaming from ``device.operand_level``); the rest on ``vector[dtype]``, at the unit's
per-kind curve where it lists one (``ComputeUnit.kind_efficiency``). Causal attention
computes its visible triangle. Views cost nothing. Scatters add the atomic term.
GEMV-like ops on PIM-resident weights run on the banks (one pass per input row).
Collectives run on the interconnect with the fastest algorithm. Ops with
``unknown=True`` still get a time from their bytes, flagged.

Quantised kernels (``workloads.quantize``) use the same terms. A fused quantised GEMM
(``attrs["quant_path"] == "fused"``) reads its family's parameters: its compute key is
``unit:<unit>@quant.<family>`` where the family states its own efficiency, and its memory
keys ``level:<name>@quant.<family>`` (``simulator.params``); its tile operand traffic
counts the packed weight bytes (``attrs["weight_elem_bytes"]``). ``attrs["dequant_ops"]``
(unpacking weights, quantising activations) is one more compute group on the vector unit
(``@quant.ops``: the unit's base curve, never an op-kind curve fitted to memory-bound
elementwise ops). A kernel that multiplies on CUDA cores (``attrs["math"] == "vector"``)
runs its FLOPs on the vector unit and still overlaps as a matrix op. A dequantise kernel
and the dense GEMM after it are ordinary ops.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import numpy as np

from hw_models import physics
from hw_models.resource_id import ResourceId, parse
from hw_models.spec import DTYPES, SystemSpec
from workloads.op import GEMM_KINDS, MATRIX_KINDS, Op

from .params import ParamError, Params, compute_unit, unit_label
from .placement import DEVICE, Placement

#: decode attention has at most this many query rows: a GEMV over the cache, with its
#: own efficiency key (``attention.decode``), unlike prefill's square tiles
DECODE_QUERY_ROWS = 16

_ACT_ROLES = ("activation", "output")

#: element size by dtype label, for operand traffic of matrix tiles
ELEM_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}


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


# -- cache rules --------------------------------------------------------------------------


def cache_levels(device) -> list[tuple[int, float]]:
    """(index, capacity) of the device's cache levels that keep data between ops, nearest first.

    Hierarchy order, not capacity order: on a server CPU the per-core L2s together can
    hold more than the shared L3, and a working set that fits them is served by L2.
    """
    return [(i, lv.capacity.value) for i, lv in enumerate(device.memory[:-1]) if lv.persistent.value]


def serving_level(levels: list[tuple[int, float]], main: int, working_set: float, fresh: bool) -> int:
    """THE cache rule: index of the memory level that serves one activation access.

    A fresh tensor (just produced, not yet evicted) in an op whose cache working set
    fits in the cache is served by the nearest persistent cache level that holds the
    whole working set; everything else comes from main memory (``main``).
    """
    if fresh:
        for i, cap in levels:
            if working_set <= cap:
                return i
    return main


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


# -- op facts the terms read --------------------------------------------------------------


def kind_keys(op: Op) -> tuple[str, ...]:
    """Efficiency keys of an op, most specific first: ``("elementwise.gelu", "elementwise")``.

    The op name's aten base (``aten.gelu.default`` -> ``gelu``, in-place ``_`` dropped)
    refines its kind; attention adds its phase (``attention.decode`` for a few query
    rows against a cache, ``attention.prefill`` otherwise), since a GEMV over the cache
    and square tiles of prefill run at different rates at equal FLOPs.
    """
    kind = op.kind
    if kind == "attention" and op.attrs.get("sq"):
        phase = "decode" if int(op.attrs["sq"]) <= DECODE_QUERY_ROWS else "prefill"
        return (f"attention.{phase}", "attention")
    base = op.name.split("::")[-1]
    parts = base.split(".")
    if len(parts) > 1 and parts[0] in ("aten", "prims", "torch"):
        parts = parts[1:]
    name = parts[0].strip("_") if parts and parts[0] else ""
    return (f"{kind}.{name}", kind) if name else (kind,)


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


def _flop_items(op: Op):
    for k, f in op.flops.items():
        if f > 0:
            yield (k if k in DTYPES else op.dtype), float(f)


def _collective_spec(op: Op) -> tuple[str | None, int]:
    a = op.attrs
    kind = a.get("collective")
    if kind is None:
        name = op.name.split("::")[-1]
        kind = name or None
    return kind, int(a.get("n") or 1)


# -- terms --------------------------------------------------------------------------------


@dataclass(slots=True)
class OpTerms:
    """The parameter-free structure of one op's cost (see the module docstring)."""

    launches: int = 0
    #: (scalar key, count): count x scalar seconds
    fixed: list[tuple[str, float]] = field(default_factory=list)
    #: alternatives per compute group: [group][alt] = (rate key, size, work, operand key, operand bytes)
    compute: list[list[tuple[str, float, float, str | None, float]]] = field(default_factory=list)
    #: resource -> [rate key, size, bytes, label, peak]
    demands: dict[str, list] = field(default_factory=dict)
    #: (updates, updates per target)
    atomic: tuple[float, float] | None = None
    #: (tier, passes, bytes per pass, flops per pass)
    pim: tuple[str, float, float, float] | None = None
    #: (kind, ranks, message bytes, resource, launched eagerly, custom one-shot allowed)
    collective: tuple[str, int, float, str, bool, bool] | None = None
    roofline_s: float = 0.0
    unknown: bool = False
    flops: float = 0.0
    bytes: float = 0.0
    unit: str = ""
    #: the op's efficiency keys (``kind_keys``), for grouping compute curves
    keys: tuple[str, ...] = ()
    #: a matrix op: compute and memory combine by the device's overlap p-norm
    matrix: bool = False

    def demand(self, resource: str, key: str, nbytes: float, label: str, peak: float, size: float | None = None) -> None:
        e = self.demands.get(resource)
        if e is None:
            self.demands[resource] = [key, size, nbytes, label, peak]
        else:
            e[2] += nbytes


class Structure:
    """What ``op_terms`` needs of one device of a system, computed once: cache levels,
    tier kinds, tile shapes, the compute keys a ``Params`` will price, peaks."""

    __slots__ = ("system", "device", "d", "levels", "main", "cache", "llc", "tiers", "cu", "kind_curves",
                 "peaks", "labels")

    def __init__(self, system: SystemSpec, d: int = 0, kind_curves: dict[str, frozenset[str]] | None = None) -> None:
        dev = system.device
        self.system = system
        self.device = dev
        self.d = d
        self.levels = [(str(r), str(r.bound), f"level:{lv.name}", lv.bandwidth.value)
                       for lv in dev.memory for r in [ResourceId("level", lv.name, d)]]
        self.main = len(dev.memory) - 1
        self.cache = cache_levels(dev)
        self.llc = max((c for _, c in self.cache), default=0.0)
        self.tiers = {t.name: t for t in system.tiers}
        self.cu = int(dev.compute_units.value)
        #: unit label -> the kind keys with a curve of their own; the fit passes its groups
        self.kind_curves = kind_curves if kind_curves is not None else {
            f"{table}.{dt}": frozenset(u.kind_efficiency)
            for table, units in (("matrix", dev.matrix), ("vector", dev.vector)) for dt, u in units.items()}
        self.labels: dict[tuple[str, bool], str] = {}

    def label(self, dtype: str, matrix: bool) -> str:
        key = (dtype, matrix)
        lab = self.labels.get(key)
        if lab is None:
            lab = self.labels[key] = unit_label(self.device, dtype, matrix)
        return lab

    def rate_key(self, label: str, keys: tuple[str, ...]) -> str:
        have = self.kind_curves.get(label, frozenset())
        for k in keys:
            if k in have:
                return f"unit:{label}@{k}"
        return f"unit:{label}"

    def tier(self, name: str):
        t = self.tiers.get(name)
        if t is None:
            have = ", ".join(["hbm (device memory)", *self.tiers])
            raise ParamError(f"system {self.system.id!r} has no tier {name!r}; it has: {have}")
        return t


def _pim_tier(op: Op, st: Structure, pl: Placement) -> str | None:
    """The PIM tier name if ``op`` is GEMV-like and its weights sit in a PIM tier that does its dtype."""
    if op.kind not in GEMM_KINDS or op.attrs.get("quant"):
        return None  # PIM banks multiply 16-bit weights; a quantised kernel runs on the device
    where = pl.tier_of("weight")
    t = st.tiers.get(where)
    if t is None or t.kind != "pim" or t.pim is None or op.dtype not in t.pim.dtypes:
        return None
    rows = int(op.attrs.get("m") or 1) * int(op.attrs.get("batch") or 1)
    if op.kind == "matmul" and rows > t.pim.max_rows.value:
        return None
    if not any(a.role == "weight" for a in op.reads):
        return None
    return where


def op_terms(op: Op, st: Structure, pl: Placement, resident: Collection[str] | None) -> OpTerms:
    """The cost terms of ``op`` on device ``st.d`` (see the module docstring)."""
    t = OpTerms(launches=op.launches, unknown=bool(op.unknown or op.kind == "unknown"))
    if op.kind == "view":
        t.launches = 0  # a view launches no kernel, whatever the tracer wrote
        return t
    t.flops = op.total_flops
    t.bytes = float(op.bytes)
    if op.launches:
        t.fixed.append(("kernel_latency", float(op.launches)))
    crossed: set[str] = set()

    def far(tier_name: str, nbytes: float, read: bool) -> None:
        tier = st.tier(tier_name)
        mem, way = ResourceId("tier", tier_name), ResourceId("link", tier_name, direction="h2d" if read else "d2h")
        t.demand(str(mem), f"tier:{tier_name}", nbytes, str(mem.bound), tier.bandwidth.value)
        link = tier.link
        line = link.granularity.value if link.granularity is not None else 0.0
        wire = physics.link_wire_bytes(nbytes, link.access == "cacheline", line)
        t.demand(str(way), f"link:{tier_name}", wire, str(way.bound), link.bandwidth.value)
        crossed.add(tier_name)

    pim_tier = _pim_tier(op, st, pl)
    kind = op.kind
    if kind == "transfer":
        _transfer(op, st, pl, t, far)
    else:
        if kind == "collective":
            _collective(op, st, t)
        # route every access; device-side cache candidates are settled after the working set is known
        cand: list[tuple[float, bool | None]] = []
        ws = 0.0
        for a in op.reads:
            ws += _route(a, True, st, pl, pim_tier, resident, cand, far, t)
        for a in op.writes:
            ws += _route(a, False, st, pl, pim_tier, resident, cand, far, t)
        main_bytes = 0.0
        for b, fresh in cand:
            if fresh is None:
                main_bytes += b
                continue
            res, label, key, peak = st.levels[serving_level(st.cache, st.main, ws, fresh)]
            t.demand(res, key, b, label, peak)
        if main_bytes:
            res, label, key, peak = st.levels[st.main]
            t.demand(res, key, main_bytes, label, peak)

    roof = 0.0
    if pim_tier is not None:
        pim = st.tiers[pim_tier].pim
        wbytes = float(sum(a.bytes for a in op.reads if a.role == "weight"))
        rows = max(int(op.attrs.get("m") or 1) * int(op.attrs.get("batch") or 1), 1)
        t.pim = (pim_tier, float(rows), wbytes, t.flops / rows)
        roof = t.flops / pim.peak.value
        t.unit = "pim"
        # the activations travel to the PIM units and the result comes back
        act_in = float(sum(a.bytes for a in op.reads if a.role != "weight"))
        link = st.tiers[pim_tier].link
        line = link.granularity.value if link.granularity is not None else 0.0
        cl = link.access == "cacheline"
        to_pim, back = ResourceId("link", pim_tier, direction="d2h"), ResourceId("link", pim_tier, direction="h2d")
        if act_in:
            t.demand(str(to_pim), f"link:{pim_tier}", physics.link_wire_bytes(act_in, cl, line),
                     str(to_pim.bound), link.bandwidth.value)
        if op.bytes_written:
            t.demand(str(back), f"link:{pim_tier}", physics.link_wire_bytes(op.bytes_written, cl, line),
                     str(back.bound), link.bandwidth.value)
        crossed.add(pim_tier)
    elif kind not in ("transfer", "collective"):
        roof = _compute_terms(op, st, t)
        fam = fused_family(op)
        if fam is not None and fam.memory_efficiency.given:
            # the kernel's own streaming efficiency on every memory level it reads
            for e in t.demands.values():
                if e[0].startswith("level:"):
                    e[0] = f"{e[0]}@quant.{fam.name}"

    if kind == "scatter" and op.updates > 0:
        t.atomic = (float(op.updates), physics.updates_per_target(op.updates, op.distinct_targets))
    for name in sorted(crossed):
        t.fixed.append((f"latency:link:{name}", 1.0))
    for key_res in t.demands.values():
        nbytes, peak = key_res[2], key_res[4]
        if key_res[1] is None:
            key_res[1] = nbytes  # curves are read at the bytes the demand moves
        if nbytes > 0 and peak > 0:
            roof = max(roof, nbytes / peak)
    t.roofline_s = roof
    return t


def fused_family(op: Op):
    """The quantised kernel family (``workloads.quantkernels``) running ``op`` as a fused
    kernel, whose efficiencies replace the dense ones; ``None`` for any other op."""
    if op.attrs.get("quant_path") != "fused":
        return None
    from workloads.quantkernels import family

    return family(str(op.attrs["quant"]))


def _compute_terms(op: Op, st: Structure, t: OpTerms) -> float:
    """Add the compute groups of an op; returns its compute roofline seconds."""
    a = op.attrs
    # a quantised kernel that multiplies on CUDA cores (ExLlama's half2 FMAs) runs on the
    # vector unit, yet it is still a tiled GEMM pipeline: its loads and math overlap as a
    # matrix op's do
    t.matrix = op.kind in MATRIX_KINDS
    matrix = t.matrix and a.get("math") != "vector"
    m, n, k = a.get("m"), a.get("n"), a.get("k")
    gemm = matrix and m and n and k
    keys = t.keys = kind_keys(op)
    share = causal_fraction(op)
    dev = st.device
    roof = 0.0
    operand = f"level:{dev.operand_level}" if dev.operand_level else None
    fam = fused_family(op)
    own = fam is not None and fam.compute_efficiency.given
    dequant = float(a.get("dequant_ops") or 0.0)
    if dequant > 0:
        # unpacking quantised weights (or quantising activations) is vector-unit work beside
        # the math; its key never takes an op-kind curve fitted to memory-bound elementwise ops
        label = st.label(op.dtype if op.dtype in dev.vector else "fp32", False)
        t.compute.append([(f"unit:{label}@quant.ops", dequant, dequant, None, 0.0)])
        roof += dequant / compute_unit(dev, label).peak.value
        t.unit = t.unit or label
    for dt, f in _flop_items(op):
        label = st.label(dt, matrix)
        key = f"unit:{label}@quant.{fam.name}" if own else st.rate_key(label, keys)
        f *= share
        roof += f / compute_unit(dev, label).peak.value
        t.unit = t.unit or label
        if gemm:
            # a quantised kernel streams its packed weights (and their scales) as the B operand
            wb = a.get("weight_elem_bytes")
            alts = [(key, f, work, operand, ob) for work, ob in physics.gemm_tiles(
                int(m), int(n), int(k), int(a.get("batch") or 1), st.cu, dev.tiles.shapes, dev.tiles.split_k,
                ELEM_BYTES.get(dt, 2), float(wb) if wb else None)]
            # padding never makes a GEMM cheaper than its useful FLOPs, whatever the tile
            t.compute.append([(k_, s, max(w, f), o, ob) for k_, s, w, o, ob in alts])
        else:
            t.compute.append([(key, f, f, None, 0.0)])
    return roof


def _collective(op: Op, st: Structure, t: OpTerms) -> None:
    ckind, n = _collective_spec(op)
    size = float(op.attrs.get("bytes") or op.bytes_read or op.bytes_written)
    if n <= 1:
        return
    try:
        ckind = physics.collective_kind(ckind or "")
    except physics.PhysicsError:
        t.unknown = True  # priced by its bytes alone, and flagged
        return
    if st.system.interconnect is None:
        raise ParamError(f"system {st.system.id!r} has no interconnect for a {n}-way {ckind}; "
                         "add one to its spec (bandwidth, latency, efficiency with sources)")
    a = op.attrs
    custom = bool(a.get("custom")) and ckind == "all_reduce" and st.system.interconnect.custom_allreduce_latency is not None
    port = str(ResourceId("interconnect", device=st.d))
    t.collective = (ckind, n, size, port, a.get("launch", "eager") != "graph", custom)


def _route(a, read: bool, st: Structure, pl: Placement, pim_tier, resident, cand, far, t: OpTerms) -> float:
    """Send one access to a far tier, to PIM banks, or onto the device list ``cand``.

    ``cand`` gets (bytes, fresh) for device cache candidates and (bytes, None) for
    device main-memory traffic. Returns the bytes the access adds to the op's cache
    working set: activations, outputs and resident inputs count wherever they are
    placed, so moving a tensor to a far tier never frees cache for the rest.
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
        pim = st.tiers[pim_tier].pim
        banks = ResourceId("pim", pim_tier)
        t.demand(str(banks), f"pim:{pim_tier}.internal", nbytes, str(banks.bound), pim.internal_bandwidth.value)
        return ws
    if where != DEVICE and pl.prefetch and role in ("weight", "kv_cache") and st.tier(where).kind != "pim":
        where = DEVICE  # a copy stream staged it in device memory (the engine prices the copy)
    if where != DEVICE:
        far(where, nbytes, read)
    else:
        cand.append((nbytes, fresh if cacheable else None))
    return ws


def _transfer(op: Op, st: Structure, pl: Placement, t: OpTerms, far) -> None:
    """A copy between a far tier and device memory: tier memory, one link direction, device
    main memory. The tier is named by ``attrs`` (``tier`` or ``src``/``dst``) or is where the
    placement puts weights / KV / activations; with neither it is a device-local copy."""
    a = op.attrs
    size = float(a.get("bytes") or max(op.bytes_read, op.bytes_written))
    src, dst = a.get("src"), a.get("dst")
    tier, direction = a.get("tier"), a.get("direction")
    main_names = (DEVICE, st.device.main_memory.name)
    if tier is None and (src or dst):
        if src and src not in main_names:
            tier, direction = src, "h2d"
        elif dst and dst not in main_names:
            tier, direction = dst, "d2h"
    if tier is None:
        tier = next((w for w in (pl.tier_of(r) for r in ("weight", "kv_cache", "activation")) if w != DEVICE), None)
    res, label, key, peak = st.levels[st.main]
    if tier is None:
        t.demand(res, key, 2 * size, label, peak)  # no tier to cross: read and write main memory
        return
    far(tier, size, (direction or "h2d") == "h2d")
    t.demand(res, key, size, label, peak)


# -- evaluation ----------------------------------------------------------------------------


class TermTable:
    """Many ops' terms as flat arrays, grouped by parameter key, for ``evaluate``."""

    def __init__(self, terms: list[OpTerms]) -> None:
        self.terms = terms
        self.n = len(terms)
        fo, fk, fc = [], [], []
        co, cg, ck, cs, cw, cok, cob = [], [], [], [], [], [], []
        do, dr, dk, ds, db = [], [], [], [], []
        g = 0
        for i, t in enumerate(terms):
            for key, count in t.fixed:
                fo.append(i)
                fk.append(key)
                fc.append(count)
            for alts in t.compute:
                for key, size, work, okey, ob in alts:
                    co.append(i)
                    cg.append(g)
                    ck.append(key)
                    cs.append(size)
                    cw.append(work)
                    cok.append(okey)
                    cob.append(ob)
                g += 1
            for res, (key, size, nbytes, _label, _peak) in t.demands.items():
                if nbytes > 0:
                    do.append(i)
                    dr.append(res)
                    dk.append(key)
                    ds.append(size)
                    db.append(nbytes)
        self.fixed = (np.array(fo, dtype=np.int64), _group(fk), np.array(fc, dtype=float))
        self.n_groups = g
        self.comp = (np.array(co, dtype=np.int64), np.array(cg, dtype=np.int64), _group(ck),
                     np.array(cs, dtype=float), np.array(cw, dtype=float), _group(cok), np.array(cob, dtype=float))
        self.dem = (np.array(do, dtype=np.int64), dr, _group(dk), np.array(ds, dtype=float), np.array(db, dtype=float))
        self.atomic = [(i, t.atomic) for i, t in enumerate(terms) if t.atomic is not None]
        self.pim = [(i, t.pim) for i, t in enumerate(terms) if t.pim is not None]
        self.coll = [(i, t.collective) for i, t in enumerate(terms) if t.collective is not None]
        self.matrix = np.array([t.matrix for t in terms], dtype=bool)


def _group(keys: list) -> dict:
    """key -> index array of the entries carrying it (None keys skipped)."""
    out: dict = {}
    for j, k in enumerate(keys):
        if k is not None:
            out.setdefault(k, []).append(j)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


@dataclass
class Evaluation:
    """Per-op seconds of every term, and per-demand rates (``TermTable.dem`` order)."""

    fixed: np.ndarray
    compute: np.ndarray
    memory: np.ndarray
    atomic: np.ndarray
    pim: np.ndarray
    time: np.ndarray
    dem_rate: np.ndarray
    dem_time: np.ndarray
    #: collectives: op index -> (resource, wire bytes, rate, algorithm)
    coll: dict[int, tuple[str, float, float, str]]


def _rates(groups: dict, sizes: np.ndarray, out: np.ndarray, params: Params) -> None:
    for key, idx in groups.items():
        out[idx] = params.rate(key, sizes[idx])


def evaluate(table: TermTable, params: Params) -> Evaluation:
    """Price every op of ``table`` with ``params`` (the formulas of the module docstring)."""
    n = table.n
    fixed = np.zeros(n)
    fo, fk, fc = table.fixed
    if len(fo):
        sc = np.empty(len(fo))
        for key, idx in fk.items():
            sc[idx] = params.scalar(key)
        np.add.at(fixed, fo, fc * sc)

    compute = np.zeros(n)
    co, cg, ck, cs, cw, cok, cob = table.comp
    if len(co):
        rate = np.empty(len(co))
        _rates(ck, cs, rate, params)
        alt = cw / rate
        for key, idx in cok.items():
            alt[idx] = np.maximum(alt[idx], cob[idx] / params.rate(key, cob[idx]))
        best = np.full(table.n_groups, np.inf)
        np.minimum.at(best, cg, alt)
        gop = np.zeros(table.n_groups, dtype=np.int64)
        gop[cg] = co
        np.add.at(compute, gop, best)

    memory = np.zeros(n)
    do, dr, dk, ds, db = table.dem
    dem_rate = np.empty(len(do))
    _rates(dk, ds, dem_rate, params)
    dem_time = db / dem_rate if len(do) else np.zeros(0)
    if len(do):
        np.maximum.at(memory, do, dem_time)

    coll: dict[int, tuple[str, float, float, str]] = {}
    for i, (kind, ranks, size, res, eager, custom) in table.coll:
        rate = float(params.rate("link:interconnect", size))
        lat = params.scalar("latency:link:interconnect")
        call = params.scalar(("eager_call_latency" if eager else "call_latency") + ":link:interconnect")
        secs, algo = physics.collective_time(kind, size, ranks, rate, lat)
        if custom:
            # a serving engine's one-shot all-reduce: its own fixed time, one step; eager launch
            # skew is paid the same (every rank must reach it)
            extra = call - params.scalar("call_latency:link:interconnect")
            one = params.scalar("custom_latency:link:interconnect") + extra + (ranks - 1) * size / rate
            if one < secs + call:
                secs, algo, call = one, "one_shot", params.scalar("custom_latency:link:interconnect") + extra
        traffic, steps = physics.collective_terms(kind, ranks, algo)
        fixed[i] += (0.0 if algo == "one_shot" else steps * lat) + call
        coll[i] = (res, traffic * size, rate, algo)
        if traffic * size > 0:
            memory[i] = max(memory[i], traffic * size / rate)

    atomic = np.zeros(n)
    if table.atomic:
        idx = np.array([i for i, _ in table.atomic])
        upd = np.array([a[0] for _, a in table.atomic])
        per = np.array([a[1] for _, a in table.atomic])
        atomic[idx] = physics.atomic_time(upd, per, params.scalar("atomics.update_rate"),
                                          params.scalar("atomics.same_address_rate"))
    pim = np.zeros(n)
    for i, (tier, passes, bpp, fpp) in table.pim:
        pim[i] = physics.pim_time(passes, bpp, fpp, params.scalar(f"pim:{tier}.internal"),
                                  params.scalar(f"pim:{tier}.peak"), params.scalar(f"pim:{tier}.mode_switch"))
    mixed = np.where(table.matrix, physics.overlap(compute, memory, params.scalar("overlap")),
                     np.maximum(compute, memory))
    body = np.maximum(np.maximum(mixed, atomic), pim)
    return Evaluation(fixed, compute, memory, atomic, pim, fixed + body, dem_rate, dem_time, coll)


def costs_of(table: TermTable, ev: Evaluation, op_ids: list[int]) -> list[OpCost]:
    """``OpCost`` objects from an evaluation (what the engine and reports read)."""
    out = []
    do, dr = table.dem[0], table.dem[1]
    per_op: list[list[int]] = [[] for _ in range(table.n)]
    for j, i in enumerate(do.tolist()):
        per_op[i].append(j)
    for i, (t, oid) in enumerate(zip(table.terms, op_ids, strict=True)):
        dems = []
        for j in per_op[i]:
            res = dr[j]
            _key, _size, nbytes, label, peak = t.demands[res]
            dems.append(Demand(res, nbytes, float(ev.dem_rate[j]), label, peak))
        c = ev.coll.get(i)
        if c is not None and c[1] > 0:
            dems.append(Demand(c[0], c[1], c[2], str(parse(c[0]).bound), c[2]))
        comp, fixed = float(ev.compute[i]), float(ev.fixed[i])
        best, bound = comp, "compute"
        for d in dems:
            if d.time_s > best:
                best, bound = d.time_s, d.bound
        if ev.atomic[i] > best:
            best, bound = float(ev.atomic[i]), "atomic"
        if ev.pim[i] > best:
            best, bound = float(ev.pim[i]), "pim"
        if best <= 0 and fixed <= 0:
            bound = "none"
        elif fixed > best:
            bound = "latency"
        out.append(OpCost(oid, comp, dems, fixed, float(ev.atomic[i]), float(ev.pim[i]), float(ev.time[i]), bound,
                          t.roofline_s, t.unknown, t.flops, t.bytes, t.launches, t.unit))
    return out


# -- public API -----------------------------------------------------------------------------


def op_cost(op: Op, system: SystemSpec, placement: Placement | None = None, device_index: int = 0, *,
            resident: Collection[str] | None = None, params: Params | None = None) -> OpCost:
    """Uncontended cost of ``op`` on device ``device_index`` of ``system``.

    ``resident``: ids of input tensors still in the last-level cache (``residency``
    computes them along a graph). ``None`` treats the op as its own replayed graph, as a
    benchmark loop runs it: inputs are warm iff the op's working set fits in the LLC.
    """
    pl = (placement or Placement()).validate(system)
    table = TermTable([op_terms(op, Structure(system, device_index), pl, resident)])
    return costs_of(table, evaluate(table, params or Params(system)), [op.id])[0]


def _signature(op: Op, res: frozenset[str]):
    """Everything ``op_terms`` reads from an op except its id: equal signatures, equal costs.

    A 70B decode graph has ~3k ops but a few dozen distinct shapes (layers repeat), so
    ``graph_costs`` prices each shape once. Transfers and collectives read free-form attrs
    and are not memoised.
    """
    if op.kind in ("transfer", "collective"):
        return None
    a = op.attrs
    return (
        op.kind, op.name, op.dtype, tuple(op.flops.items()), a.get("m"), a.get("n"), a.get("k"), a.get("batch"),
        a.get("causal"), a.get("sq"), a.get("skv"), a.get("quant"), a.get("quant_path"), a.get("math"),
        a.get("dequant_ops"), a.get("weight_elem_bytes"),
        op.launches, op.unknown, op.updates, op.distinct_targets, op.device,
        tuple((x.role, x.bytes, x.tensor in res) for x in op.reads),
        tuple((x.role, x.bytes) for x in op.writes),
    )


class _ShapeGroups:
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


_SHAPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shape_groups(graph) -> _ShapeGroups:
    ops = graph.ops if hasattr(graph, "ops") else list(graph)
    try:
        sg = _SHAPES.get(graph)
    except TypeError:  # not weak-referenceable (a plain list of ops): no caching
        return _ShapeGroups(list(ops))
    # the groups hold the op objects, so an op replaced in the graph cannot reuse an id
    if sg is None or len(sg.ops) != len(ops) or any(a is not b for a, b in zip(sg.ops, ops, strict=True)):
        sg = _SHAPES[graph] = _ShapeGroups(list(ops))
    return sg


def graph_terms(graph, system: SystemSpec, placement: Placement | None = None,
                kind_curves: dict[str, frozenset[str]] | None = None) -> tuple[list[Op], list[int], TermTable]:
    """(ops, shape group of each op, terms of each group's representative) of ``graph``,
    with cache freshness tracked along program order. ``kind_curves`` overrides which
    per-kind compute curves exist (the fit's groups); default: the spec's."""
    from .precision_check import check_graph

    check_graph(system, graph)  # fp8 on a GPU without fp8 units is refused, never priced on another unit
    pl = (placement or Placement()).validate(system)
    sg = _shape_groups(graph)
    structs = {0: Structure(system, 0, kind_curves)}
    group_of, reps = sg.groups(structs[0].llc)
    terms = []
    for op, r in reps:
        st = structs.get(op.device)
        if st is None:
            st = structs[op.device] = Structure(system, op.device, kind_curves)
        terms.append(op_terms(op, st, pl, r))
    return sg.ops, group_of, TermTable(terms)


def grouped_costs(graph, system: SystemSpec, placement: Placement | None = None,
                  params: Params | None = None) -> tuple[np.ndarray, list[OpCost]]:
    """(shape group of each op, ``OpCost`` of each group's representative): what
    ``graph_costs`` returns without one object per op (``simulate`` reads it this way)."""
    ops, group_of, table = graph_terms(graph, system, placement)
    reps = costs_of(table, evaluate(table, params or Params(system)), [0] * table.n)
    return np.asarray(group_of, dtype=np.int64), reps


def graph_costs(graph, system: SystemSpec, placement: Placement | None = None,
                params: Params | None = None) -> list[OpCost]:
    """``op_cost`` for every op of ``graph`` in program order, with cache freshness tracked along it.

    Ops with the same shape (layers repeat) are priced once and their ``OpCost`` objects
    share one ``demands`` list: treat it as read-only. Ops are taken as immutable once
    priced: change a graph by building a new one (``graph.copy()``), not by editing ops
    in place.
    """
    group_of, reps = grouped_costs(graph, system, placement, params)
    ops = graph.ops if hasattr(graph, "ops") else list(graph)
    return [_with_id(reps[gi], op.id) for op, gi in zip(ops, group_of.tolist(), strict=True)]


def _with_id(c: OpCost, op_id: int) -> OpCost:
    return OpCost(op_id, c.compute_s, c.demands, c.fixed_s, c.atomic_s, c.pim_s, c.time_s, c.bound,
                  c.roofline_s, c.unknown, c.flops, c.bytes, c.launches, c.unit)
