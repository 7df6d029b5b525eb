"""The ``Op`` record: one kernel launch (or one framework-level fused op).

Every number derives from shapes and dtypes. An op whose cost rule is unknown is kept
with ``unknown=True`` and reported; it is never silently zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "matmul",
    "gemv",
    "attention",
    "conv",
    "elementwise",
    "reduction",
    "norm",
    "softmax",
    "scatter",
    "gather",
    "copy",
    "transfer",
    "collective",
    "moe",
    "view",
    "unknown",
)
ROLES = ("weight", "activation", "kv_cache", "output")

# Sets of kinds, one definition each. They differ on purpose: each answers its own question.
#: kinds that run on the matrix engines (tensor cores, AMX): the cost model's compute
#: unit and overlap; flash attention and expert GEMMs are matrix work too
MATRIX_KINDS = frozenset({"matmul", "gemv", "conv", "attention", "moe"})
#: matrix kinds that multiply by a weight: the tracer stores their weights at a policy's
#: bytes per element and labels their FLOPs with its matmul dtype (attention has no weight)
WEIGHT_MATRIX_KINDS = MATRIX_KINDS - {"attention"}
#: kinds whose weights a quantised kernel family reads (no family quantises convolutions)
QUANTIZED_KINDS = WEIGHT_MATRIX_KINDS - {"conv"}
#: dense matrix products (a GEMM or its one-row GEMV): tensor parallelism splits their
#: weights by module name (a MoE block is split by its experts instead), fusion merges
#: sibling projections, PIM banks run them, and parametric families choose between the two
GEMM_KINDS = frozenset({"matmul", "gemv"})
#: kinds whose kernel comes from a vendor library (cuBLAS/cuDNN/oneDNN GEMMs, SDPA
#: backends): the host pays for the library's call path (heuristic lookup, workspace,
#: backend selection) on top of the framework's dispatch, ``host.library_call``
LIBRARY_KINDS = MATRIX_KINDS


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
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} not in {KINDS}")

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
