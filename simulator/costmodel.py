"""Per-op cost: how long one op takes alone on one device, and what bounds it.

One model, in two steps, so that ``simulate`` and the calibration fit run the same code:

1. ``op_terms`` reads an ``Op`` against a system's *structure* (which memory level or
   tier its bytes come from, its tile alternatives, its collective) and lists its
   cost terms, each naming the parameter (``simulator.params``) it is priced with.
   Nothing here depends on a rate that calibration fits.
2. ``evaluate`` prices a ``TermTable`` of many ops at once with a ``Params``: numbers
   from a spec for ``simulate``, a candidate parameter vector for the fit.

This module is the model's front door (``op_cost``, ``graph_terms``, ``grouped_costs``,
``graph_costs``: a graph priced once per distinct shape) and this docstring its rules; the
steps live in ``simulator.cache`` (which level serves an access), ``simulator.opterms``
(``op_terms``), ``simulator.kindterms`` (the terms of kinds with their own, named by the
op-kind registry ``workloads.kinds``) and ``simulator.pricing`` (``evaluate``, ``costs_of``).

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
from collections.abc import Collection

import numpy as np

from hw_models.spec import SystemSpec
from workloads import kinds, payloads
from workloads.op import Op

from .cache import residency
from .opterms import OpTerms, Structure, op_terms
from .params import Params
from .placement import Placement
from .pricing import Demand, Evaluation, OpCost, TermTable, costs_of, evaluate

#: the two steps and their records, importable from here as the model's one front door
__all__ = ["Demand", "Evaluation", "OpCost", "OpTerms", "Structure", "TermTable", "costs_of", "evaluate",
           "graph_costs", "graph_terms", "grouped_costs", "op_cost", "op_terms"]


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
    ``graph_costs`` prices each shape once. An op's kind-specific facts enter through its
    typed payloads (``workloads.payloads.signature``), so a field added there is in here at
    once. Kinds with ``OpKind.by_shape`` false (transfers, collectives) are not memoised.
    """
    if not kinds.REGISTRY[op.kind].by_shape:
        return None
    return (
        op.kind, op.name, op.dtype, tuple(op.flops.items()), payloads.signature(op),
        op.launches, op.unknown, op.device,
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
