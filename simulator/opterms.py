"""An op's cost terms: what ``op_terms`` reads of one ``Op`` against a device's structure.

The rules are the ``simulator.costmodel`` docstring's; this module applies them to one op
and lists its terms (``OpTerms``), each naming the parameter key it is priced with.
Kind-specific terms come from the kind's hooks in the op-kind registry
(``workloads.kinds``: ``terms`` and ``keys``, the built-in ones in ``simulator.kindterms``);
every other kernel gets ``device_terms``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hw_models import physics
from hw_models.resource_id import ResourceId
from hw_models.spec import DTYPES, SystemSpec
from workloads import kinds
from workloads.op import GEMM_KINDS, MATRIX_KINDS, Op
from workloads.payloads import Attention, Gemm, Moe, Quant, payload, quant

from .cache import cache_levels, serving_level
from .params import ParamError, compute_unit, unit_label
from .placement import DEVICE, Placement

#: decode attention has at most this many query rows: a GEMV over the cache, with its
#: own efficiency key (``attention.decode``), unlike prefill's square tiles
DECODE_QUERY_ROWS = 16

_ACT_ROLES = ("activation", "output")

#: element size by dtype label, for operand traffic of matrix tiles
ELEM_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}


def kind_hook(kind: str, name: str) -> Callable[..., Any] | None:
    """The kind's ``name`` hook from the registry, a ``"module:function"`` reference resolved."""
    hook = getattr(kinds.get(kind), name, None)
    return _resolve(hook) if isinstance(hook, str) else hook


@cache
def _resolve(ref: str) -> Callable[..., Any]:
    module, _, fn = ref.partition(":")
    return getattr(importlib.import_module(module), fn)


def kind_keys(op: Op) -> tuple[str, ...]:
    """Efficiency keys of an op, most specific first: ``("elementwise.gelu", "elementwise")``.

    The op name's aten base (``aten.gelu.default`` -> ``gelu``, in-place ``_`` dropped)
    refines its kind, unless the kind's own ``keys`` hook (``workloads.kinds``) answers
    (attention's phase: ``simulator.kindterms.attention_keys``).
    """
    own = kind_hook(op.kind, "keys")
    got = own(op) if own is not None else None
    if got:
        return got
    kind = op.kind
    base = op.name.split("::")[-1]
    parts = base.split(".")
    if len(parts) > 1 and parts[0] in ("aten", "prims", "torch"):
        parts = parts[1:]
    name = parts[0].strip("_") if parts and parts[0] else ""
    return (f"{kind}.{name}", kind) if name else (kind,)


def causal_fraction(op: Op) -> float:
    """Share of an attention op's dense FLOPs a causal kernel computes.

    The tracer counts the full ``sq x skv`` square (its payload's ``causal`` set); flash/SDPA
    kernels skip the masked tiles. With ``sq == skv`` (prefill) query ``i`` sees keys
    ``0..i``: ``sq (sq + 1) / 2`` of ``sq^2`` scores, ``(sq + 1) / (2 sq)``. Decode
    (``sq = 1`` against the whole cache) and non-causal attention keep the full count.
    """
    return _causal_share(payload(op))


def _causal_share(p) -> float:
    """``causal_fraction`` of an op whose payload ``p`` is already read."""
    if not isinstance(p, Attention) or not p.causal:
        return 1.0
    sq, skv = int(p.sq or 0), int(p.skv or 0)
    if sq <= 1 or sq != skv:
        return 1.0
    return (sq + 1) / (2.0 * sq)


def _flop_items(op: Op):
    for k, f in op.flops.items():
        if f > 0:
            yield (k if k in DTYPES else op.dtype), float(f)


@dataclass(slots=True)
class OpTerms:
    """The parameter-free structure of one op's cost (the formulas are in ``simulator.costmodel``'s docstring)."""

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
    tier kinds, tile shapes, the compute keys a ``Params`` will price."""

    __slots__ = ("system", "device", "d", "levels", "main", "cache", "llc", "tiers", "cu", "kind_curves", "labels")

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


#: an op without quantisation facts: a dense kernel
_DENSE = Quant()


def _pim_tier(op: Op, st: Structure, pl: Placement, q: Quant) -> str | None:
    """The PIM tier name if ``op`` is GEMV-like and its weights sit in a PIM tier that does its dtype."""
    if op.kind not in GEMM_KINDS or q.family:
        return None  # PIM banks multiply 16-bit weights; a quantised kernel runs on the device
    where = pl.tier_of("weight")
    t = st.tiers.get(where)
    if t is None or t.kind != "pim" or t.pim is None or op.dtype not in t.pim.dtypes:
        return None
    if op.kind == "matmul" and _rows(op) > t.pim.max_rows.value:
        return None
    if not any(a.role == "weight" for a in op.reads):
        return None
    return where


def op_terms(op: Op, st: Structure, pl: Placement, resident: Collection[str] | None) -> OpTerms:
    """The cost terms of ``op`` on device ``st.d`` (see ``simulator.costmodel``): its kind's
    ``terms`` hook (``workloads.kinds``) where it has one, else ``device_terms``."""
    t = OpTerms(launches=op.launches, unknown=bool(op.unknown or op.kind == "unknown"))
    if op.kind == "view":
        t.launches = 0  # a view launches no kernel, whatever the tracer wrote
        return t
    t.flops = op.total_flops
    t.bytes = float(op.bytes)
    if op.launches:
        t.fixed.append(("kernel_latency", float(op.launches)))
    far = Far(st, t)
    own = kind_hook(op.kind, "terms")
    roof = (own or device_terms)(op, st, pl, resident, t, far)
    for name in sorted(far.crossed):
        t.fixed.append((f"latency:link:{name}", 1.0))
    for key_res in t.demands.values():
        nbytes, peak = key_res[2], key_res[4]
        if key_res[1] is None:
            key_res[1] = nbytes  # curves are read at the bytes the demand moves
        if nbytes > 0 and peak > 0:
            roof = max(roof, nbytes / peak)
    t.roofline_s = roof
    return t


class Far:
    """Sends bytes of one op to a far tier (its memory and one link direction), and keeps
    the links crossed, each of which adds its latency to the op once."""

    __slots__ = ("st", "t", "crossed")

    def __init__(self, st: Structure, t: OpTerms) -> None:
        self.st, self.t = st, t
        self.crossed: set[str] = set()

    def __call__(self, tier_name: str, nbytes: float, read: bool) -> None:
        tier = self.st.tier(tier_name)
        mem, way = ResourceId("tier", tier_name), ResourceId("link", tier_name, direction="h2d" if read else "d2h")
        self.t.demand(str(mem), f"tier:{tier_name}", nbytes, str(mem.bound), tier.bandwidth.value)
        link = tier.link
        line = link.granularity.value if link.granularity is not None else 0.0
        wire = physics.link_wire_bytes(nbytes, link.access == "cacheline", line)
        self.t.demand(str(way), f"link:{tier_name}", wire, str(way.bound), link.bandwidth.value)
        self.crossed.add(tier_name)


def route_accesses(op: Op, st: Structure, pl: Placement, pim_tier: str | None, resident: Collection[str] | None,
                   t: OpTerms, far: Far) -> None:
    """Add the demands of every access of ``op``: far tiers and PIM banks at once, device
    accesses once the op's cache working set is known (``serving_level``)."""
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


def device_terms(op: Op, st: Structure, pl: Placement, resident: Collection[str] | None, t: OpTerms, far: Far) -> float:
    """The default terms of a kernel: its bytes routed, then its compute on the device's
    units (or on PIM banks holding its weights); returns its compute roofline seconds."""
    # each record read once per op: the reads are a measurable share of pricing a graph
    q, p = quant(op) or _DENSE, payload(op)
    pim_tier = _pim_tier(op, st, pl, q)
    route_accesses(op, st, pl, pim_tier, resident, t, far)
    if pim_tier is not None:
        far.crossed.add(pim_tier)
        return _pim_terms(op, st, pim_tier, t)
    fam = fused_family(q)
    roof = _compute_terms(op, st, t, q, p, fam)
    if fam is not None and fam.memory_efficiency.given:
        # the kernel's own streaming efficiency on every memory level it reads
        for e in t.demands.values():
            if e[0].startswith("level:"):
                e[0] = f"{e[0]}@quant.{fam.name}"
    return roof


def _rows(op: Op) -> int:
    g = payload(op)
    return g.rows if isinstance(g, Gemm) else 1


def _pim_terms(op: Op, st: Structure, pim_tier: str, t: OpTerms) -> float:
    """Passes over the PIM banks, and the activations' trip to them and back."""
    pim = st.tiers[pim_tier].pim
    wbytes = float(sum(a.bytes for a in op.reads if a.role == "weight"))
    rows = max(_rows(op), 1)
    t.pim = (pim_tier, float(rows), wbytes, t.flops / rows)
    t.unit = "pim"
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
    return t.flops / pim.peak.value


def fused_family(q: Quant):
    """The quantised kernel family (``workloads.quantkernels``) running an op whose Quant
    record is ``q`` as a fused kernel, whose efficiencies replace the dense ones; ``None``
    for any other op."""
    if q.path != "fused":
        return None
    from workloads.quantkernels import family

    return family(str(q.family))


def _compute_terms(op: Op, st: Structure, t: OpTerms, q: Quant, g, fam) -> float:
    """Add the compute groups of an op (its Quant record ``q``, payload ``g`` and fused kernel
    family ``fam``, read by the caller); returns its compute roofline seconds."""
    # a quantised kernel that multiplies on CUDA cores (ExLlama's half2 FMAs) runs on the
    # vector unit, yet it is still a tiled GEMM pipeline: its loads and math overlap as a
    # matrix op's do
    t.matrix = op.kind in MATRIX_KINDS
    matrix = t.matrix and q.math != "vector"
    if isinstance(g, Moe):
        g = g.experts_gemm()  # its experts' products are tiled like any GEMM's
    gemm = matrix and isinstance(g, Gemm) and g.m and g.n and g.k
    keys = t.keys = kind_keys(op)
    share = _causal_share(g)
    dev = st.device
    roof = 0.0
    operand = f"level:{dev.operand_level}" if dev.operand_level else None
    own = fam is not None and fam.compute_efficiency.given
    dequant = float(q.dequant_ops or 0.0)
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
            wb = q.weight_elem_bytes
            alts = [(key, f, work, operand, ob) for work, ob in physics.gemm_tiles(
                int(g.m), int(g.n), int(g.k), int(g.batch or 1), st.cu, dev.tiles.shapes, dev.tiles.split_k,
                ELEM_BYTES.get(dt, 2), float(wb) if wb else None)]
            # padding never makes a GEMM cheaper than its useful FLOPs, whatever the tile
            t.compute.append([(k_, s, max(w, f), o, ob) for k_, s, w, o, ob in alts])
        else:
            t.compute.append([(key, f, f, None, 0.0)])
    return roof


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
