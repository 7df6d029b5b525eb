"""Memory footprint: does one step of a workload fit the memory of a system?

Counted per device of one tensor-parallel group of ``tp`` devices, against each tier:

- **weights**: the model's parameter bytes, divided by ``tp``. For a quantised precision
  (``meta["precision"]``), ``meta["weight_bytes"]``: each parameter as its kernel stores
  it (packed weights with their group scales and zeros). Otherwise from ``meta["config"]
  ["params"]`` × the weight dtype's bytes when the graph carries a model config (the
  tracer may read only some rows of an embedding, and a mixture-of-experts op reads
  only the experts it expects to touch, yet every weight must be resident); otherwise
  the sum over distinct ``weight`` tensor ids of the largest access seen of each.
- **KV cache**: the whole cache after this step, context plus new tokens:
  ``2 × layers × ceil(kv_heads / tp) × head_dim × tokens × batch × bytes``. Heads are
  the unit of sharding, so with fewer KV heads than devices each device keeps one.
  ``tokens`` is ``context + 1`` for decode and ``prompt`` (+ ``meta["prefix"]``, an
  already-cached prefix, when a builder sets it) for prefill. The KV dtype is ``meta["kv_dtype"]``
  (the precision's KV format: an fp8 cache holds half the bytes, so twice the tokens),
  else the graph's dtype, except that weight-only integer formats (int4, int8) keep a bf16
  cache. Without a config:
  the sum over distinct ``kv_cache`` tensor ids of the largest access of each, / tp.
- **activations**: the peak of live activation bytes over program order. A tensor is
  live from the op that writes it to the last op that reads it; the peak of the sum is
  an estimate of the allocator's high-water mark that ignores fragmentation and library
  workspaces. It is *not* divided by ``tp``: hidden states are replicated across a
  tensor-parallel group, so this errs on the safe side.

Tiers: the device's main memory (named after its last memory level, e.g. ``hbm``) has
its capacity per device. A tier beyond the device (host DRAM, CXL, PIM) is shared by
all ``num_devices`` of the system, and a plan runs every replica at once, so each
device is given ``capacity / num_devices`` of it. Which tier each role lives in comes
from the placement (``Placement.tier_of(role)``; ``"device"`` means device memory).

Why one long module: weights, KV cache, activations and tier capacity are a few short
functions each, sharing the per-tier accounting of ``Footprint``; ``kv_capacity``
(serving) reads the same counts.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hw_models.spec import SystemSpec
from workloads.graph import WorkloadGraph

GIB = 2.0**30

#: bytes per element of each dtype name used in graphs and specs
DTYPE_BYTES = {
    "fp64": 8.0,
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
#: weight-only quantised formats whose KV cache stays in 16-bit
_WEIGHT_ONLY = {"int4", "int8"}

ROLES = ("weights", "kv_cache", "activations")
_ROLE_OF_ACCESS = {
    "weight": "weights",
    "kv_cache": "kv_cache",
    "activation": "activations",
    "output": "activations",
}


class DoesNotFit(ValueError):
    """The workload needs more memory than a tier of the system has."""

    user_facing = True


class FootprintError(ValueError):
    """A placement or graph the footprint cannot be computed for (bad input)."""

    user_facing = True


@dataclass(frozen=True)
class TierUse:
    """Bytes one device needs in one tier, by role, against what it has there."""

    tier: str
    capacity: float
    weights: float = 0.0
    kv_cache: float = 0.0
    activations: float = 0.0

    @property
    def needed(self) -> float:
        return self.weights + self.kv_cache + self.activations

    @property
    def fits(self) -> bool:
        return self.needed <= self.capacity

    @property
    def line(self) -> str:
        return f"needs {self.needed / GIB:.1f} GiB in {self.tier}, has {self.capacity / GIB:.1f} GiB"


@dataclass(frozen=True)
class Footprint:
    """Per-device memory need of one workload step on one system, tier by tier."""

    system: str
    tp: int
    tiers: dict[str, TierUse]
    #: how each role's bytes were found ("config" or "graph"), and what was assumed
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return all(t.fits for t in self.tiers.values())

    @property
    def worst(self) -> TierUse:
        """The tier with the highest fill ratio (the one that decides fitting)."""
        return max(self.tiers.values(), key=lambda t: (t.needed / t.capacity) if t.capacity else math.inf)

    @property
    def reason(self) -> str:
        """Empty when it fits; else "needs X GiB in T, has Y GiB" for each tier that overflows."""
        return "; ".join(t.line for t in self.tiers.values() if not t.fits)

    @property
    def needed(self) -> dict[str, float]:
        return {name: t.needed for name, t in self.tiers.items()}

    @property
    def capacity(self) -> dict[str, float]:
        return {name: t.capacity for name, t in self.tiers.items()}

    @property
    def by_tier(self) -> pd.DataFrame:
        rows = [
            {
                "tier": t.tier,
                "weights_gib": t.weights / GIB,
                "kv_cache_gib": t.kv_cache / GIB,
                "activations_gib": t.activations / GIB,
                "needed_gib": t.needed / GIB,
                "capacity_gib": t.capacity / GIB,
                "free_gib": (t.capacity - t.needed) / GIB,
                "fits": t.fits,
            }
            for t in self.tiers.values()
        ]
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "tp": self.tp,
            "fits": self.fits,
            "reason": self.reason,
            "needed_bytes": self.needed,
            "capacity_bytes": self.capacity,
            "notes": dict(self.notes),
        }


# -- role bytes -----------------------------------------------------------------------


def dtype_bytes(dtype: str) -> float:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise FootprintError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


def _config(graph: WorkloadGraph) -> dict[str, Any]:
    cfg = graph.meta.get("config")
    return cfg if isinstance(cfg, dict) else {}


def _shard_factor(graph: WorkloadGraph, tp: int) -> int:
    """How many ways still to split tensors: a graph already sharded for tp says so in meta."""
    done = int(graph.meta.get("tp", 1) or 1)
    if done > 1 and tp % done == 0:
        return tp // done
    return tp


def _largest_by_tensor(graph: WorkloadGraph, role: str) -> float:
    biggest: dict[str, int] = {}
    for op in graph.ops:
        for a in (*op.reads, *op.writes):
            if a.role == role and a.bytes > biggest.get(a.tensor, -1):
                biggest[a.tensor] = a.bytes
    return float(sum(biggest.values()))


def weight_bytes(graph: WorkloadGraph, tp: int = 1) -> tuple[float, str]:
    """Weight bytes per device and where the number came from."""
    cfg = _config(graph)
    dtype = graph.meta.get("dtype")
    shard = _shard_factor(graph, tp)
    if graph.meta.get("precision") and graph.meta.get("weight_bytes"):
        # a quantised step: its builder counted each parameter as its kernel stores it
        # (packed weights with their scales and zeros; norms, embeddings and 16-bit layers as is)
        return float(graph.meta["weight_bytes"]) / shard, "builder: parameters as the precision stores them / tp"
    if cfg.get("params") and dtype in DTYPE_BYTES:
        return float(cfg["params"]) * DTYPE_BYTES[dtype] / shard, "config: params x dtype bytes / tp"
    return _largest_by_tensor(graph, "weight") / shard, "graph: distinct weight tensors / tp"


def kv_tokens(meta: dict[str, Any]) -> int:
    """Tokens held in the KV cache after this step (see the module docstring)."""
    if meta.get("phase", "decode") == "prefill":
        # a prefill graph's "context" is an already-cached prefix only when the builder says so
        return int(meta.get("prompt", 0) or 0) + int(meta.get("prefix", 0) or 0)
    return int(meta.get("context", 0) or 0) + int(meta.get("new_tokens", 1) or 1)


def kv_dtype(meta: dict[str, Any]) -> str:
    if meta.get("kv_dtype"):
        return str(meta["kv_dtype"])
    dtype = str(meta.get("dtype", "bf16"))
    return "bf16" if dtype in _WEIGHT_ONLY else dtype


def kv_bytes(graph: WorkloadGraph, tp: int = 1) -> tuple[float, str]:
    """KV-cache bytes per device and where the number came from."""
    cfg = _config(graph)
    need = ("num_layers", "kv_heads", "head_dim")
    if all(cfg.get(k) for k in need):
        shard = _shard_factor(graph, tp)
        heads = math.ceil(int(cfg["kv_heads"]) / shard)
        tokens = kv_tokens(graph.meta)
        batch = int(graph.meta.get("batch", 1) or 1)
        b = (
            2.0
            * int(cfg["num_layers"])
            * heads
            * int(cfg["head_dim"])
            * tokens
            * batch
            * dtype_bytes(kv_dtype(graph.meta))
        )
        return b, "config: 2 x layers x ceil(kv_heads/tp) x head_dim x tokens x batch x bytes"
    return _largest_by_tensor(graph, "kv_cache") / _shard_factor(graph, tp), "graph: distinct kv tensors / tp"


#: graph -> (op count, peak): sweeps ask for the same graph's peak once per system and tp
_PEAKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def peak_activation_bytes(graph: WorkloadGraph) -> float:
    """``_peak_activation_bytes``, remembered per graph object while its op count is unchanged
    (a ``FamilyPoint`` of a sweep computes it from its arrays)."""
    pre = getattr(graph, "peak_activation_bytes", None)
    if isinstance(pre, float):
        return pre
    hit = _PEAKS.get(graph)
    if hit is not None and hit[0] == len(graph.ops):
        return hit[1]
    peak = _peak_activation_bytes(graph)
    _PEAKS[graph] = (len(graph.ops), peak)
    return peak


def _peak_activation_bytes(graph: WorkloadGraph) -> float:
    """Peak over program order of the bytes of activation tensors that are live.

    A tensor written at op i and last read at op j (j >= i; never read means j = i)
    occupies its bytes over [i, j]. Writes into the KV cache and weights are not
    activations. A tensor written twice keeps its largest size over its whole life.
    """
    ops = graph.ops
    born: dict[str, int] = {}
    last: dict[str, int] = {}
    size: dict[str, int] = {}
    for i, op in enumerate(ops):
        for a in op.writes:
            if _ROLE_OF_ACCESS.get(a.role) != "activations":
                continue
            born.setdefault(a.tensor, i)
            last[a.tensor] = max(last.get(a.tensor, i), i)
            size[a.tensor] = max(size.get(a.tensor, 0), a.bytes)
        for a in op.reads:
            if a.tensor in born:
                last[a.tensor] = i
    if not born:
        return 0.0
    delta = [0.0] * (len(ops) + 1)
    for t, i in born.items():
        delta[i] += size[t]
        delta[last[t] + 1] -= size[t]
    peak = live = 0.0
    for d in delta:
        live += d
        peak = max(peak, live)
    return peak


# -- placement ------------------------------------------------------------------------


def _tier_name(placement: Any, role: str) -> str:
    if placement is None:
        return "device"
    access_role = {"weights": "weight", "kv_cache": "kv_cache", "activations": "activation"}[role]
    tier_of = getattr(placement, "tier_of", None)
    if callable(tier_of):
        for key in (access_role, role):
            try:
                name = tier_of(key)
            except (KeyError, ValueError, AttributeError):
                continue
            if name:
                return str(name)
    return str(getattr(placement, role, "device") or "device")


def _resolve_tier(system: SystemSpec, name: str) -> str:
    device_names = {"device", *(lv.name for lv in system.device.memory)}
    if name in device_names:
        return system.device.main_memory.name
    if name in system.tier_names:
        return name
    have = ", ".join(["device", *system.tier_names])
    raise FootprintError(f"placement names tier {name!r}, but {system.id} has: {have}")


def _capacity(system: SystemSpec, tier: str) -> float:
    if tier == system.device.main_memory.name:
        return system.device.main_memory.capacity.value
    return system.tier(tier).capacity.value / system.num_devices


# -- public -----------------------------------------------------------------------------


def footprint(graph: WorkloadGraph, system: SystemSpec, placement: Any = None, tp: int = 1) -> Footprint:
    """Bytes one device of a ``tp``-way group needs in each tier, against its share of that tier."""
    if int(tp) < 1:
        raise FootprintError(f"tp must be >= 1, got {tp}")
    tp = int(tp)
    w, w_note = weight_bytes(graph, tp)
    kv, kv_note = kv_bytes(graph, tp)
    act = peak_activation_bytes(graph)
    amounts = {"weights": w, "kv_cache": kv, "activations": act}

    device_tier = system.device.main_memory.name
    per_tier: dict[str, dict[str, float]] = {device_tier: {}}
    for role in ROLES:
        tier = _resolve_tier(system, _tier_name(placement, role))
        per_tier.setdefault(tier, {})[role] = per_tier.get(tier, {}).get(role, 0.0) + amounts[role]
    tiers = {
        name: TierUse(tier=name, capacity=_capacity(system, name), **roles)
        for name, roles in per_tier.items()
    }
    notes = {
        "weights": w_note,
        "kv_cache": kv_note,
        "activations": "peak live activation bytes over program order (not divided by tp)",
    }
    if tp > system.num_devices:
        notes["tp"] = f"tp={tp} exceeds the {system.num_devices} devices of {system.id}"
    return Footprint(system=system.id, tp=tp, tiers=tiers, notes=notes)


def check_fits(graph: WorkloadGraph, system: SystemSpec, placement: Any = None, tp: int = 1) -> Footprint:
    """The footprint, or ``DoesNotFit`` ("does not fit: needs X GiB in hbm, has Y GiB")."""
    fp = footprint(graph, system, placement, tp)
    if not fp.fits:
        what = graph.meta.get("model", "workload")
        raise DoesNotFit(f"does not fit: {fp.reason} ({what} on {system.id}, tp={tp}, per device)")
    return fp


@dataclass(frozen=True)
class KVCapacity:
    """How much KV cache fits on one device beside a step's weights and activations."""

    tier: str
    #: bytes of the KV cache's tier left after the weights and activations placed there
    free_bytes: float
    #: one cached token of one sequence, every layer, this device's share of the heads
    bytes_per_token: float
    #: cached tokens (summed over all sequences) that fit in ``free_bytes``
    tokens: int

    def sequences(self, tokens_each: int) -> int:
        """Sequences of ``tokens_each`` cached tokens that fit at once (a batch limit)."""
        return self.tokens // max(int(tokens_each), 1)


def kv_capacity(graph: WorkloadGraph, system: SystemSpec, placement: Any = None, tp: int = 1) -> KVCapacity:
    """KV-cache capacity of one device of a ``tp``-way group, for the model and precision of
    ``graph``: the KV tier's capacity minus the weights and activations there, over the
    bytes one token takes in the precision's KV format (``kv_bytes``). A serving loop
    admits requests while their cached tokens fit; an fp8 cache holds twice the tokens
    of a bf16 one."""
    fp = footprint(graph, system, placement, tp)
    tier = _resolve_tier(system, _tier_name(placement, "kv_cache"))
    use = fp.tiers[tier]
    free = max(use.capacity - use.weights - use.activations, 0.0)
    held = kv_tokens(graph.meta) * int(graph.meta.get("batch", 1) or 1)
    per_token = kv_bytes(graph, tp)[0] / held if held else 0.0
    if per_token <= 0:
        raise FootprintError(f"{graph.meta.get('model', 'this workload')} holds no KV cache to size")
    return KVCapacity(tier=tier, free_bytes=free, bytes_per_token=per_token, tokens=int(free // per_token))
