"""What hardware *is*: pydantic specs for systems, read from YAML with human units.

Every number is a ``Quantity`` (``hw_models.quantity``) that carries its ``source`` (a datasheet, a paper, or
``measured: validation/data/...``), so a reader can always ask "says who?".
A system is one host (the CPU that dispatches work), ``num_devices`` identical devices
(GPU or CPU sockets doing the math), an optional device-to-device interconnect for
tensor parallelism, and memory tiers beyond the device (host DRAM, CXL expanders,
PIM memory), each reached over its own link.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .quantity import (
    Bandwidth,
    Bytes,
    Count,
    EfficiencyCurve,
    Exponent,
    FlopRate,
    Rate,
    Seconds,
    Strict,
    Switch,
)

DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")


class MemoryLevel(Strict):
    """One level of a device's memory hierarchy (L1, L2, LLC, HBM/DRAM)."""

    name: str
    capacity: Bytes
    bandwidth: Bandwidth
    latency: Seconds
    efficiency: EfficiencyCurve
    #: whether data an op leaves in this level is still there for the next op. A GPU's
    #: L1 is private to one SM and the next kernel's blocks land elsewhere (false); a
    #: CPU core's L1/L2 serve the same thread's next op (true). Main memory: true.
    persistent: Switch


class ComputeUnit(Strict):
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


class AtomicSpec(Strict):
    """Atomic accumulate: distinct addresses proceed in parallel up to ``update_rate``;
    updates to one address serialise at ``same_address_rate``."""

    update_rate: Rate
    same_address_rate: Rate


class TileSpec(Strict):
    """How matrix kernels cut a GEMM into per-compute-unit output tiles.

    A library picks, per shape, the tile of ``shapes`` that finishes soonest: bigger
    tiles reuse each operand byte more, smaller ones quantise less (fewer idle units in
    the last wave, less padding of a skinny M). With ``split_k`` a GEMM with fewer tiles
    than compute units splits its K dimension so every unit works (no partial wave).
    """

    shapes: list[tuple[int, int]] = Field(min_length=1)
    split_k: bool = True
    source: str = Field(min_length=1)

    @field_validator("shapes")
    @classmethod
    def _positive(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for m, n in v:
            if m < 1 or n < 1 or m > 4096 or n > 4096:
                raise ValueError(f"tile {m}x{n}: each side must be 1..4096")
        return v


class DeviceSpec(Strict):
    name: str
    kind: Literal["gpu", "cpu"]
    compute_units: Count = Field(description="SMs on a GPU, cores on a CPU: the unit of wave quantisation")
    #: matrix engines (tensor cores, AMX) per dtype
    matrix: dict[str, ComputeUnit]
    #: vector/SIMT units per dtype, for elementwise, reductions, norms
    vector: dict[str, ComputeUnit]
    #: nearest first; the last level is the device's main memory
    memory: list[MemoryLevel] = Field(min_length=1)
    #: device-side time of one kernel beyond its work (launch into the SMs, tail, drain);
    #: paid in eager and graph mode alike (graph replay removes host costs only)
    kernel_latency: Seconds
    atomics: AtomicSpec
    #: output tiles of matrix kernels (wave quantisation, padding, operand reuse)
    tiles: TileSpec
    #: the memory level that feeds matrix tiles their operands (GPU: L2; CPU: a core's
    #: L2); a tile's operand panels stream from it at its bandwidth. None: no such bound.
    operand_level: str | None = None
    #: how compute and memory streams of one op overlap: its body time is the p-norm
    #: ``(compute^p + memory^p)^(1/p)``; large p is perfect overlap (the max), 1 none
    overlap: Exponent
    #: the thread that dispatches an op is the one that runs it (a CPU device under
    #: eager PyTorch): op i+1 is dispatched only after op i has finished
    serial_dispatch: Switch

    @model_validator(mode="after")
    def _levels(self) -> DeviceSpec:
        names = [lv.name for lv in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names repeat: {names}")
        if self.operand_level is not None and self.operand_level not in names:
            raise ValueError(f"operand_level {self.operand_level!r} is not one of the memory levels {names}")
        return self

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
        raise KeyError(f"device {self.name!r} has no memory level {name!r}; it has: "
                       f"{', '.join(lv.name for lv in self.memory)}")


class HostSpec(Strict):
    """The CPU that runs the framework and issues kernels."""

    name: str
    cores: Count
    #: CPU time per op in an eager framework (Python + dispatcher + launch call)
    dispatch_overhead: Seconds
    #: CPU time per bare torch op called in a tight loop (dispatcher only, no nn.Module
    #: code around it); ``None``: same as ``dispatch_overhead``. Calibration measures both:
    #: model code costs several times the bare dispatch per launch.
    op_dispatch: Seconds | None = None
    #: CPU time a vendor-library kernel (cuBLAS/cuDNN/oneDNN GEMM, an SDPA backend) adds
    #: to an eager launch: heuristic lookup, workspace and backend selection; graph
    #: replay skips it with the rest of the host path
    library_call: Seconds
    #: one CUDA-graph (or compiled-graph) launch
    graph_launch: Seconds
    #: added per node inside a replayed graph
    graph_node_cost: Seconds
    memory_capacity: Bytes
    memory_bandwidth: Bandwidth
    memory_latency: Seconds


class LinkSpec(Strict):
    name: str
    kind: Literal["pcie", "nvlink", "nvlink-c2c", "infinity-fabric", "cxl", "ddr", "internal", "network"]
    #: per direction; reads and writes travel in opposite directions
    bandwidth: Bandwidth
    #: per transfer (bulk DMA setup) or per round trip (cache-line loads); per algorithm
    #: step for collectives
    latency: Seconds
    #: bulk: DMA of whole tensors; cacheline: loads of ``granularity`` bytes on demand
    access: Literal["bulk", "cacheline"] = "bulk"
    granularity: Bytes | None = None
    #: fraction of ``bandwidth`` a transfer sustains, by transfer (or message) bytes
    efficiency: EfficiencyCurve
    #: cache-line links: lines a device keeps in flight (request credits); Little's law
    #: caps the link at ``outstanding_lines x granularity / latency``
    outstanding_lines: Count | None = None
    #: device fabrics: the fixed time of one collective call beyond its algorithm's steps
    #: when the ranks run in lockstep (captured in a CUDA graph): the library's protocol setup
    collective_latency: Seconds | None = None
    #: the same for a collective launched eagerly: it also waits for the last rank's host
    #: to launch it (launch skew); None: as ``collective_latency``
    eager_collective_latency: Seconds | None = None
    #: device fabrics with peer memory access (NVLink): the fixed time of a serving engine's
    #: custom one-shot all-reduce (every rank reads its peers' buffers); None: not available
    custom_allreduce_latency: Seconds | None = None

    @model_validator(mode="after")
    def _cacheline(self) -> LinkSpec:
        if self.access == "cacheline" and (self.granularity is None or self.outstanding_lines is None):
            raise ValueError(f"link {self.name!r} with access cacheline needs 'granularity' and 'outstanding_lines'")
        return self


class PimSpec(Strict):
    """Compute inside the memory banks (bank-level parallelism).

    A GEMV on PIM streams every weight row through the bank units once per input
    vector: ``rows`` vectors cost ``rows`` passes, so PIM wins at batch 1 and loses its
    edge as batch grows. Each call pays ``mode_switch`` to move the banks from normal
    to PIM mode and back (host <-> PIM).
    """

    internal_bandwidth: Bandwidth
    peak: FlopRate
    mode_switch: Seconds
    #: GEMV-like ops with at most this many input rows (batch x tokens) run on the banks;
    #: larger ones are GEMMs better served by the host or GPU
    max_rows: Count
    dtypes: list[str] = ["fp16", "bf16"]


class TierSpec(Strict):
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


class SystemSpec(Strict):
    id: str
    name: str
    description: str = ""
    host: HostSpec
    device: DeviceSpec
    num_devices: int = Field(1, ge=1, le=1_000_000)
    #: device-to-device fabric used for tensor-parallel collectives
    interconnect: LinkSpec | None = None
    tiers: list[TierSpec] = []
    #: identical nodes of ``num_devices`` devices each (a cluster); ``--nodes`` sets it
    nodes: int = Field(1, ge=1, le=100_000)
    #: the inter-node network as one device sees it: its own NIC (rail-optimised
    #: InfiniBand / RoCE, one NIC per GPU), per direction. Collectives spanning nodes run
    #: hierarchically: inside a node on ``interconnect``, across nodes on this.
    network: LinkSpec | None = None

    @model_validator(mode="after")
    def _fabric(self) -> SystemSpec:
        if self.interconnect is not None and self.interconnect.collective_latency is None:
            raise ValueError("interconnect needs 'collective_latency' (the fixed time of one collective call)")
        return self

    @model_validator(mode="after")
    def _unique_tiers(self) -> SystemSpec:
        names = [t.name for t in self.tiers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"tier name {sorted(dup)[0]!r} used twice")
        return self

    @property
    def total_devices(self) -> int:
        return self.num_devices * self.nodes

    def tier(self, name: str) -> TierSpec:
        for t in self.tiers:
            if t.name == name:
                return t
        have = ", ".join(["hbm (device memory)"] + [t.name for t in self.tiers])
        raise KeyError(f"system {self.id!r} has no tier {name!r}; it has: {have}")

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]
