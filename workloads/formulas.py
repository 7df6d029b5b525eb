"""Trace-side cost formulas: how one aten call's FLOPs and bytes derive from its tensors.

A ``Rule`` (``workloads.rules``) names its formula by ``cost``; the tracer hands each
recorded call to that formula as a ``Call`` and records what the formula leaves in it.
``register_formula`` adds one; most new ops need none, since a formula serves every
packet whose cost has its shape (every pointwise activation uses ``pointwise``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from . import rules
from .errors import WorkloadError
from .payloads import Gemm


@dataclass(slots=True)
class Call:
    """One aten call as a formula sees it (``ins``: tensor inputs in order, ``mutated``:
    the inputs it writes), and what the formula says of it: ``kind`` (the rule's, which a
    formula may refine), FLOPs, attrs, atomic updates, and per-tensor (by ``id``) element
    counts that replace a read's or a write's whole tensor."""

    tracer: Any
    packet: str
    rule: rules.Rule
    args: tuple
    kwargs: dict
    ins: list[torch.Tensor]
    outs: list[torch.Tensor]
    mutated: list[torch.Tensor]
    kind: str
    flops: float = 0.0
    attrs: dict[str, Any] = field(default_factory=dict)
    updates: int = 0
    distinct: int = 0
    read_elems: dict[int, int] = field(default_factory=dict)
    write_elems: dict[int, int] = field(default_factory=dict)


Formula = Callable[[Call], None]

#: cost name -> formula; ``view`` has none: the tracer records a view without asking
FORMULAS: dict[str, Formula] = {}


def register_formula(*names: str) -> Callable[[Formula], Formula]:
    def add(fn: Formula) -> Formula:
        for n in names:
            FORMULAS[n] = fn
        return fn

    return add


def apply(c: Call) -> None:
    fn = FORMULAS.get(c.rule.cost)
    if fn is None:
        raise WorkloadError(f"rule for {c.packet!r} names cost {c.rule.cost!r}, which has no formula; "
                            f"known: {', '.join(FORMULAS)}")
    fn(c)


@register_formula("matmul")
def _matmul(c: Call) -> None:
    d = rules.matmul_dims(c.packet, [list(t.shape) for t in c.ins if t.dim() >= 1])
    c.kind = rules.matmul_kind(d)
    c.flops = rules.matmul_flops(d)
    c.attrs.update(Gemm(**d).attrs())


@register_formula("conv")
def _conv(c: Call) -> None:
    args = c.args
    groups = args[8] if len(args) > 8 else c.kwargs.get("groups", 1)
    c.flops = rules.conv_flops(list(args[0].shape), list(args[1].shape), list(c.outs[0].shape), groups)
    c.attrs.update(groups=groups, kernel=list(args[1].shape[2:]))


@register_formula("pointwise", "fill")
def _pointwise(c: Call) -> None:
    c.flops = c.rule.per_elem * sum(t.numel() for t in (c.outs or c.mutated))


@register_formula("reduce", "norm", "softmax")
def _per_input(c: Call) -> None:
    c.flops = c.rule.per_elem * (c.ins[0].numel() if c.ins else 0)


@register_formula("gather")
def _gather(c: Call) -> None:
    # the table is read only where indexed: as many elements as the output holds;
    # one FLOP per element for the index arithmetic (a convention, as for pointwise ops)
    n = c.outs[0].numel() if c.outs else 0
    c.read_elems[id(c.ins[0])] = n
    c.flops = c.rule.per_elem * n


@register_formula("copy")
def _copy(c: Call) -> None:
    pass  # compulsory traffic of its tensors, no FLOPs


@register_formula("scatter_copy")
def _scatter_copy(c: Call) -> None:
    c.write_elems[id(c.mutated[0])] = c.ins[-1].numel() if c.mutated else 0


@register_formula("scatter", "index_put")
def _scatter(c: Call) -> None:
    args, packet = c.args, c.packet
    accumulate = bool(args[3] if len(args) > 3 else c.kwargs.get("accumulate", False)) \
        if c.rule.cost == "index_put" else True
    dest = c.mutated[0] if c.mutated else c.ins[0]
    src = _scatter_source(packet, args, c.kwargs)
    updates = src.numel() if isinstance(src, torch.Tensor) else 1
    if accumulate:
        distinct, how = _distinct(c.tracer, packet, args, dest, src, updates)
        c.attrs["distinct_targets_from"] = how
        c.flops = float(updates)
        c.read_elems[id(dest)] = distinct
        c.write_elems[id(dest)] = distinct
        c.updates, c.distinct = updates, distinct
    else:
        c.kind = "copy"
        c.read_elems[id(dest)] = 0
        c.write_elems[id(dest)] = updates


def _distinct(tracer: Any, packet: str, args: tuple, dest: torch.Tensor, src: torch.Tensor,
              updates: int) -> tuple[int, str]:
    """Distinct destination addresses of an accumulating scatter."""
    if tracer.scatter_hints:
        return int(tracer.scatter_hints.pop(0)["distinct_targets"]), "declared"
    index = None
    if packet.startswith(("index_add", "index_reduce")):
        dim, index = args[1], args[2]
        if index.device.type != "meta":
            per = src.numel() // max(src.shape[dim], 1) if src.dim() else 1
            return int(torch.unique(index).numel()) * per, "exact"
    elif packet.startswith(("scatter_add", "scatter_reduce")):
        dim, index = args[1], args[2]
        if index.device.type != "meta":
            lin = _linear_targets(index, dim, dest)
            return int(torch.unique(lin).numel()), "exact"
    elif packet.startswith("index_put"):
        indices = [i for i in args[1] if i is not None] if len(args[1]) == 1 else []
        if indices and indices[0].device.type != "meta" and indices[0].dtype != torch.bool:
            per = dest[0].numel() if dest.dim() else 1
            return int(torch.unique(indices[0]).numel()) * per, "exact"
    for m in reversed(tracer.mod_stack):  # a module may declare it (meta indices have no values)
        declared = getattr(m, "roofsim_distinct_targets", None)
        if declared is not None:
            return int(declared), "declared"
    return min(updates, dest.numel()), "upper_bound"


def _scatter_source(packet: str, args: tuple, kwargs: dict) -> Any:
    """The tensor of values a scatter adds (index_add: source, scatter_add: src, index_put: values)."""
    if packet.startswith("index_put"):
        return args[2] if len(args) > 2 else kwargs["values"]
    key = "source" if packet.startswith(("index_add", "index_reduce")) else "src"
    return args[3] if len(args) > 3 else kwargs[key]


def _linear_targets(index: torch.Tensor, dim: int, dest: torch.Tensor) -> torch.Tensor:
    grids = torch.meshgrid(*[torch.arange(s) for s in index.shape], indexing="ij")
    coords = [g.clone() for g in grids]
    coords[dim] = index.long()
    lin = torch.zeros_like(index, dtype=torch.long)
    for c, st in zip(coords, dest.stride(), strict=False):
        lin += c * st
    return lin
