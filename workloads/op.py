"""The ``Op`` record: one kernel launch (or one framework-level fused op).

Every number derives from shapes and dtypes. An op whose cost rule is unknown is kept
with ``unknown=True`` and reported; it is never silently zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import kinds

#: every registered kind, in registration order (``workloads.kinds``)
KINDS = kinds.REGISTRY.keys()
ROLES = ("weight", "activation", "kv_cache", "output")

# Sets of kinds, live views of the registry's flags (``workloads.kinds.OpKind`` says what
# each flag means). They differ on purpose: each answers its own question.
MATRIX_KINDS = kinds.kind_set("matrix")
WEIGHT_MATRIX_KINDS = kinds.kind_set("weight")
QUANTIZED_KINDS = kinds.kind_set("quantized")
GEMM_KINDS = kinds.kind_set("gemm")
LIBRARY_KINDS = kinds.kind_set("library")


@dataclass(slots=True)
class Access:
    """Bytes of one tensor read or written by an op, and what that tensor is."""

    tensor: str
    bytes: int
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} not in {ROLES}")
        if self.bytes < 0:
            raise ValueError(f"negative bytes for tensor {self.tensor}")


@dataclass(slots=True)
class Op:
    id: int
    name: str
    kind: str
    dtype: str
    flops: dict[str, float] = field(default_factory=dict)
    reads: list[Access] = field(default_factory=list)
    writes: list[Access] = field(default_factory=list)
    launches: int = 1
    shapes: list[list[int]] = field(default_factory=list)
    module: str = ""
    #: scatter ops: atomic updates issued and how many distinct addresses they hit
    updates: int = 0
    distinct_targets: int = 0
    unknown: bool = False
    #: rule-specific facts (gemm m/n/k, heads, sequence lengths, tensor-parallel shard)
    attrs: dict[str, Any] = field(default_factory=dict)
    #: which device of a multi-device system runs it, and on which stream
    device: int = 0
    stream: int = 0

    def __post_init__(self) -> None:
        kinds.check(self.kind)

    @property
    def total_flops(self) -> float:
        return float(sum(self.flops.values()))

    @property
    def bytes_read(self) -> int:
        return sum(a.bytes for a in self.reads)

    @property
    def bytes_written(self) -> int:
        return sum(a.bytes for a in self.writes)

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def bytes_by_role(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.reads:
            out[a.role] = out.get(a.role, 0) + a.bytes
        for a in self.writes:
            out["output"] = out.get("output", 0) + a.bytes
        return out

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP per byte of compulsory traffic."""
        b = self.bytes
        return self.total_flops / b if b else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Op:
        d = dict(d)
        d["reads"] = [Access(**a) for a in d.get("reads", [])]
        d["writes"] = [Access(**a) for a in d.get("writes", [])]
        return cls(**d)
