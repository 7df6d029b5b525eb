"""Typed op payloads: per op kind, the facts its cost rule reads, as one small frozen record
instead of free-form ``Op.attrs`` keys, whose names collide (``n`` is a GEMM's N and a
collective's group size).

``Op.attrs`` stays the serialised form (graph JSON and the graph cache are unchanged):
each field names the attrs key it is stored under, ``payload(op)`` reads an op's record
for its kind (``OpKind.payload`` in ``workloads.kinds``) and ``Record.attrs()`` writes one
back (``store(op, record)`` into an op's own attrs). The cost model's per-op cache
signature is ``signature(op)``, so a field added here is in it at once. ``Quant`` is not
one kind's: a quantised kernel of any kind carries it. A field whose value, when unstated,
follows from the op itself says how next to its declaration (``_opt(key, fill)``: a
collective's bytes are its buffer's), so ``payload`` returns it filled.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from numbers import Real
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from .op import Op


class PayloadError(ValueError):
    user_facing = True


def _key(name: str) -> Any:
    return field(metadata={"key": name})


def _opt(name: str, fill: Callable[[Op, Any], Any] | None = None) -> Any:
    # None is "not stated": ``attrs()`` leaves it out, so a record written back gives the
    # attrs a producer stated and no more (the graph JSON is unchanged). ``fill(op, value)``:
    # the value cost rules read, from the stated one (None when unstated) and the op itself;
    # a record with such a field exists for every op of its kind
    return field(default=None, kw_only=True, metadata={"key": name, "fill": fill})


_NUMBER = (Real,)
_TYPES = {"int": _NUMBER, "float": _NUMBER, "bool": (bool,), "str": (str,)}


@cache
def _layout(cls: type) -> tuple[tuple[str, str, tuple, bool, Any], ...]:
    """Per field of a record class, once: (name, attrs key, the types its value may have,
    required, fill); annotations are strings here (``from __future__ import annotations``)."""
    return tuple((f.name, f.metadata.get("key"), _TYPES[str(f.type).split(" ")[0]], f.default is MISSING,
                  f.metadata.get("fill")) for f in fields(cls))  # type: ignore[arg-type]


@cache
def _optional(cls: type) -> bool:
    return not any(fill for *_, fill in _layout(cls))


class _Record:
    """Reading and writing a record's fields from and to ``Op.attrs``."""

    __slots__ = ()

    @classmethod
    def optional(cls) -> bool:
        """True: an op carrying none of the record's keys has no payload (a fused kernel named
        by its pattern keeps only the names of its members). False where a field fills from
        the op: then every op of the kind has one."""
        return _optional(cls)

    @classmethod
    def read(cls, op: Op) -> Any:
        """The record ``op.attrs`` state, unstated fields filled from the op as each field's
        ``_opt(key, fill)`` says."""
        a = op.attrs
        values: dict[str, Any] = {}
        missing: list[str] = []
        layout = _layout(cls)
        for name, key, want, required, _ in layout:
            v = a.get(key)
            if v is None:
                if required:
                    missing.append(key)
                continue
            if not isinstance(v, want):
                t = next(f.type for f in fields(cls) if f.name == name)  # type: ignore[arg-type]
                raise PayloadError(f"op {op.id} ({op.kind} {op.name!r}): attrs[{key!r}] = {v!r} is not {t}")
            values[name] = v
        if not values and cls.optional():
            return None
        if missing:
            raise PayloadError(f"op {op.id} ({op.kind} {op.name!r}) lacks attrs {missing} of its {cls.__name__} payload")
        for name, _, _, _, fill in layout:
            if fill is not None:
                values[name] = fill(op, values.get(name))
        return cls(**values)

    def attrs(self) -> dict[str, Any]:
        """The attrs keys of the fields stated: what ``read`` reads back."""
        return {key: v for name, key, *_ in _layout(type(self)) if (v := getattr(self, name)) is not None}


@dataclass(frozen=True, slots=True)
class Gemm(_Record):
    """A dense product: ``batch`` (default 1) products of ``m x k`` by ``k x n``."""

    m: int = _key("m")
    n: int = _key("n")
    k: int = _key("k")
    batch: int | None = _opt("batch")

    @property
    def rows(self) -> int:
        return int(self.m or 1) * int(self.batch or 1)


@dataclass(frozen=True, slots=True)
class Attention(_Record):
    """SDPA: ``b`` x ``h`` query heads of ``sq`` rows over ``skv`` keys (``kv_heads`` of them);
    ``causal`` lets a kernel skip the masked tiles the tracer's dense count includes."""

    b: int | None = _opt("b")
    h: int | None = _opt("h")
    sq: int = _key("sq")
    skv: int = _key("skv")
    d: int | None = _opt("d")
    dv: int | None = _opt("dv")
    kv_heads: int | None = _opt("kv_heads")
    causal: bool | None = _opt("causal")
    mask: bool | None = _opt("mask")


@dataclass(frozen=True, slots=True)
class Collective(_Record):
    """A collective over a group of ranks, priced by ``hw_models.physics.collective_time``;
    ``launch`` and ``custom`` say how a sharded step runs it (``simulator.collective_mode``).
    ``payload`` fills what a traced collective leaves unstated, as each field says."""

    #: ``all_reduce``, ``all_gather``, ``all_to_all``, ... (``hw_models.physics.collective_kind``);
    #: unstated: the op name's last part (``c10d::all_reduce``)
    kind: str | None = _opt("collective", lambda op, v: v if v is not None else (op.name.split("::")[-1] or None))
    #: ranks in the group; unstated: 1 (nothing to exchange)
    n_ranks: int | None = _opt("n", lambda op, v: int(v or 1))
    #: the message in bytes as ``physics.collective_terms`` counts it (all_reduce: the buffer;
    #: all_gather: the gathered output; all_to_all: what one rank sends in all); unstated: the
    #: op's read bytes, else its written bytes
    bytes: float | None = _opt("bytes", lambda op, v: float(v or op.bytes_read or op.bytes_written))
    #: ``eager`` (unstated; each rank launches it on its own, so the ranks skew) or ``graph``
    #: (CUDA graphs keep the ranks in lockstep)
    launch: str | None = _opt("launch", lambda op, v: v or "eager")
    #: an all_reduce a serving engine may run with its one-shot custom kernel (where the
    #: interconnect states ``custom_allreduce_latency``); unstated: False
    custom: bool | None = _opt("custom", lambda op, v: bool(v))


@dataclass(frozen=True, slots=True)
class Transfer(_Record):
    """A copy between a far tier and device memory, named by ``tier`` and ``direction`` or by
    ``src`` / ``dst``; with neither, the placement's tier (``simulator.kindterms``)."""

    #: the far memory tier the copy crosses (a tier of the system, such as ``host``)
    tier: str | None = _opt("tier")
    #: ``h2d`` (unstated: from the tier into device memory) or ``d2h``
    direction: str | None = _opt("direction")
    #: bytes copied; unstated: the larger of the op's read and written bytes
    bytes: float | None = _opt("bytes", lambda op, v: float(v or max(op.bytes_read, op.bytes_written)))
    #: where the copy reads, with ``tier`` unstated: a tier (then it is ``h2d``) or device
    #: memory (``device`` or the device's main memory name)
    src: str | None = _opt("src")
    #: where it writes, likewise (a tier: ``d2h``)
    dst: str | None = _opt("dst")


@dataclass(frozen=True, slots=True)
class Moe(_Record):
    """A mixture-of-experts block (``workloads.leaves``): ``tokens`` each routed to ``top_k`` of
    ``num_experts`` experts (``expected_experts`` distinct ones hit) of ``hidden`` ->
    ``intermediate`` width, and its router's FLOPs."""

    tokens: int = _key("tokens")
    num_experts: int = _key("num_experts")
    top_k: int = _key("top_k")
    expected_experts: float = _key("expected_experts")
    hidden: int = _key("hidden")
    intermediate: int | None = _opt("intermediate")
    router_flops: float | None = _opt("router_flops")

    def experts_gemm(self) -> Gemm | None:
        """The experts' work as grouped-GEMM kernels run it: each expert hit multiplies its
        share of the routed rows by its gate-up (``2I x H``) and down (``H x I``) weights, the
        FLOPs and weights of one ``rows x 3I x H`` product per expert; None without a width."""
        if not self.intermediate or not self.expected_experts:
            return None
        rows = math.ceil(self.tokens * self.top_k / self.expected_experts - 1e-9)
        return Gemm(m=max(1, rows), n=3 * int(self.intermediate), k=int(self.hidden),
                    batch=max(1, round(self.expected_experts)))


@dataclass(frozen=True, slots=True)
class Scatter(_Record):
    """An accumulating scatter's atomic ``updates`` and the ``distinct_targets`` they hit, kept
    as ``Op`` fields (not attrs) by the tracer."""

    updates: int = 0
    distinct_targets: int = 0

    @classmethod
    def read(cls, op: Op) -> Scatter:
        return cls(op.updates, op.distinct_targets)

    def attrs(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class Quant(_Record):
    """A quantised kernel (``workloads.quantize``): its ``family``, whether it is the ``fused``
    kernel or a ``dequantize`` / ``quantize`` step, the vector work of unpacking
    (``dequant_ops``), the packed bytes per weight element, and ``math == "vector"`` for a
    kernel that multiplies on CUDA cores."""

    family: str | None = _opt("quant")
    path: str | None = _opt("quant_path")
    dequant_ops: float | None = _opt("dequant_ops")
    weight_elem_bytes: float | None = _opt("weight_elem_bytes")
    math: str | None = _opt("math")


def payload(op: Op) -> Any:
    """The typed record of ``op``'s kind (None where its kind has none or the op carries none
    of its keys); a ``PayloadError`` for an op whose attrs do not make one."""
    cls = _kinds.REGISTRY[op.kind].payload
    return cls.read(op) if cls is not None else None


def quant(op: Op) -> Quant | None:
    return Quant.read(op)


def store(op: Op, record: Any) -> None:
    """Write ``record``'s stated fields into ``op.attrs``: a key the op already has keeps its
    place in the dict, a new one goes last in field order, and ``None`` fields are left alone
    (so a record built from only the fields a writer sets touches only their keys)."""
    op.attrs.update(record.attrs())


def values(record: Any) -> tuple:
    """A record's type and field values, flat and hashable (empty for no record)."""
    if record is None:
        return ()
    return (type(record).__name__, *(getattr(record, name) for name, *_ in _layout(type(record))))


def signature(op: Op) -> tuple:
    """Everything of ``op``'s payloads a cost rule may read."""
    return values(payload(op)) + values(quant(op))


# last: the kind registry imports the record types above
from . import kinds as _kinds  # noqa: E402
