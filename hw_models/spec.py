"""What hardware *is*: pydantic specs for systems, read from YAML with human units.

Every number is a ``Quantity`` that carries its ``source`` (a datasheet, a paper, or
``measured: validation/data/...``), so a reader can always ask "says who?".
A system is one host (the CPU that dispatches work), ``num_devices`` identical devices
(GPU or CPU sockets doing the math), an optional device-to-device interconnect for
tensor parallelism, and memory tiers beyond the device (host DRAM, CXL expanders,
PIM memory), each reached over its own link.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import units

DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Quantity(_Strict):
    """A number with a unit dimension and the source it came from."""

    dimension: ClassVar[str] = "count"
    value: float
    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, Quantity):
            return {"value": data.value, "source": data.source}
        if not isinstance(data, dict):
            raise ValueError(
                f"expected a mapping {{value: ..., source: ...}}, got {data!r} (every number needs a source)"
            )
        if "source" not in data:
            raise ValueError("missing 'source' (every hardware number must say where it came from)")
        out = dict(data)
        try:
            out["value"] = units.parse(data.get("value"), cls.dimension)
        except units.UnitError as e:
            raise ValueError(str(e)) from None
        return out

    @field_validator("value")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"must be a finite non-negative number, got {v}")
        return v

    def __str__(self) -> str:
        return units.fmt(self.value, self.dimension)


class Bytes(Quantity):
    dimension: ClassVar[str] = "bytes"


class Bandwidth(Quantity):
    dimension: ClassVar[str] = "bandwidth"


class Seconds(Quantity):
    dimension: ClassVar[str] = "time"


class FlopRate(Quantity):
    dimension: ClassVar[str] = "flop_rate"


class Frequency(Quantity):
    dimension: ClassVar[str] = "frequency"


class Rate(Quantity):
    dimension: ClassVar[str] = "rate"


class Count(Quantity):
    dimension: ClassVar[str] = "count"


class Ratio(Quantity):
    dimension: ClassVar[str] = "ratio"


class EfficiencyCurve(_Strict):
    """Fraction of peak reached as a function of work size (bytes or FLOPs).

    ``points`` are (size, efficiency) pairs, interpolated linearly in log10(size) and
    held flat beyond the ends; ``value`` is shorthand for a flat curve. Kept as data
    (after Calculon) so calibration can rewrite it without touching code.
    """

    points: list[tuple[float, float]]
    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data and "points" not in data:
            out = {k: v for k, v in data.items() if k != "value"}
            out["points"] = [(1.0, data["value"])]
            return out
        return data

    @field_validator("points")
    @classmethod
    def _check(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not pts:
            raise ValueError("needs at least one (size, efficiency) point")
        pts = sorted((float(x), float(e)) for x, e in pts)
        for x, e in pts:
            if not (x > 0):
                raise ValueError(f"size {x} must be > 0")
            if not (0 < e <= 1.0):
                raise ValueError(f"efficiency {e} must be in (0, 1]")
        return pts

    def __call__(self, size: float | np.ndarray) -> float | np.ndarray:
        xs = np.log10([p[0] for p in self.points])
        es = np.array([p[1] for p in self.points])
        x = np.log10(np.maximum(np.asarray(size, dtype=float), 1.0))
        out = np.interp(x, xs, es)
        return float(out) if np.ndim(out) == 0 else out


def flat(value: float, source: str) -> EfficiencyCurve:
    return EfficiencyCurve(points=[(1.0, value)], source=source)


class MemoryLevel(_Strict):
    """One level of a device's memory hierarchy (L1, L2, LLC, HBM/DRAM)."""

    name: str
    capacity: Bytes
    bandwidth: Bandwidth
    latency: Seconds
    efficiency: EfficiencyCurve


class ComputeUnit(_Strict):
    peak: FlopRate
    efficiency: EfficiencyCurve
    #: optional per-op-kind efficiency (of the same ``peak``) by FLOPs, overriding
    #: ``efficiency`` for ops of that kind: keys are an op kind (``softmax``, ``gemv``) or
    #: kind.op (``elementwise.gelu``), the more specific winning. On a CPU a gelu element
    #: costs 3x a layer_norm element and bf16 GEMV runs 3-5x faster than bf16 GEMM, which
    #: no single curve over FLOPs can hold. Calibration fits them; empty: one curve.
    kind_efficiency: dict[str, EfficiencyCurve] = {}

    def curve(self, keys: tuple[str, ...] = ()) -> EfficiencyCurve:
        """The efficiency curve for an op named by ``keys``, most specific first."""
        for k in keys:
            c = self.kind_efficiency.get(k)
            if c is not None:
                return c
        return self.efficiency


class AtomicSpec(_Strict):
    """Atomic accumulate: distinct addresses proceed in parallel up to ``update_rate``;
    updates to one address serialise at ``same_address_rate``."""

    update_rate: Rate
    same_address_rate: Rate


class DeviceSpec(_Strict):
    name: str
    kind: Literal["gpu", "cpu"]
    compute_units: Count = Field(description="SMs on a GPU, cores on a CPU: the unit of wave quantisation")
    #: matrix engines (tensor cores, AMX) per dtype
    matrix: dict[str, ComputeUnit]
    #: vector/SIMT units per dtype, for elementwise, reductions, norms
    vector: dict[str, ComputeUnit]
    #: nearest first; the last level is the device's main memory
    memory: list[MemoryLevel] = Field(min_length=1)
    kernel_latency: Seconds
    atomics: AtomicSpec
    #: output tile a matrix kernel assigns to one compute unit (wave quantisation)
    tile_m: int = 128
    tile_n: int = 128

    @field_validator("matrix", "vector")
    @classmethod
    def _dtypes(cls, d: dict[str, ComputeUnit]) -> dict[str, ComputeUnit]:
        bad = [k for k in d if k not in DTYPES]
        if bad:
            raise ValueError(f"unknown dtype {bad[0]!r}; allowed: {', '.join(DTYPES)}")
        if not d:
            raise ValueError("needs at least one dtype")
        return d

    @property
    def main_memory(self) -> MemoryLevel:
        return self.memory[-1]

    def level(self, name: str) -> MemoryLevel:
        for lv in self.memory:
            if lv.name == name:
                return lv
        raise KeyError(name)


class HostSpec(_Strict):
    """The CPU that runs the framework and issues kernels."""

    name: str
    cores: Count
    #: CPU time per op in an eager framework (Python + dispatcher + launch call)
    dispatch_overhead: Seconds
    #: CPU time per bare torch op called in a tight loop (dispatcher only, no nn.Module
    #: code around it); ``None``: same as ``dispatch_overhead``. Calibration measures both:
    #: model code costs several times the bare dispatch per launch.
    op_dispatch: Seconds | None = None
    #: one CUDA-graph (or compiled-graph) launch
    graph_launch: Seconds
    #: added per node inside a replayed graph
    graph_node_cost: Seconds
    memory_capacity: Bytes
    memory_bandwidth: Bandwidth
    memory_latency: Seconds


class LinkSpec(_Strict):
    name: str
    kind: Literal["pcie", "nvlink", "nvlink-c2c", "cxl", "ddr", "internal"]
    #: per direction; reads and writes travel in opposite directions
    bandwidth: Bandwidth
    latency: Seconds
    #: bulk: DMA of whole tensors; cacheline: loads of ``granularity`` bytes on demand
    access: Literal["bulk", "cacheline"] = "bulk"
    granularity: Bytes | None = None
    efficiency: Ratio


class PimSpec(_Strict):
    """Compute inside the memory banks (bank-level parallelism)."""

    internal_bandwidth: Bandwidth
    peak: FlopRate
    mode_switch: Seconds
    dtypes: list[str] = ["fp16", "bf16"]


class TierSpec(_Strict):
    """Memory outside the device: host DRAM, a CXL expander, PIM-enabled memory."""

    name: str
    kind: Literal["host", "cxl", "pim"]
    capacity: Bytes
    bandwidth: Bandwidth
    latency: Seconds
    link: LinkSpec
    pim: PimSpec | None = None

    @model_validator(mode="after")
    def _pim(self) -> TierSpec:
        if self.kind == "pim" and self.pim is None:
            raise ValueError(f"tier {self.name!r} of kind pim needs a 'pim' section")
        return self


class SystemSpec(_Strict):
    id: str
    name: str
    description: str = ""
    host: HostSpec
    device: DeviceSpec
    num_devices: int = Field(1, ge=1)
    #: device-to-device fabric used for tensor-parallel collectives
    interconnect: LinkSpec | None = None
    tiers: list[TierSpec] = []

    @model_validator(mode="after")
    def _unique_tiers(self) -> SystemSpec:
        names = [t.name for t in self.tiers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"tier name {sorted(dup)[0]!r} used twice")
        return self

    def tier(self, name: str) -> TierSpec:
        for t in self.tiers:
            if t.name == name:
                return t
        have = ", ".join(["hbm (device memory)"] + [t.name for t in self.tiers])
        raise KeyError(f"system {self.id!r} has no tier {name!r}; it has: {have}")

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]
