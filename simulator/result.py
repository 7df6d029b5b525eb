"""``SimResult``: what one simulated step did, op by op, and its totals.

Totals and their meaning (the keys of ``summary()`` are a contract other tools read):

* ``step_time_s``: from the host starting to dispatch to the last op or copy ending.
* ``flops``, ``bytes``: the whole step's work, summed over the ``tp`` devices of a
  tensor-parallel group (one representative device is simulated; devices are symmetric).
* ``kernels``, ``host_time_s``, ``device_busy_s``, floors: per device.
* ``memory_floor_s``: every byte over the peak bandwidth of the memory it lives in:
  device main memory (HBM), a far tier's memory as the device reaches it
  (``min(tier bandwidth, link bandwidth)``, since every byte crosses the link), PIM
  weights at the banks' internal bandwidth. Caches are ignored (a floor, not a guess).
* ``compute_floor_s``: FLOPs of each dtype over the device's peak for it (matrix peak
  where the device has one).
* ``time_by_bound``: the step cut into binding terms on the main stream (device 0,
  stream 0): each op's busy time goes to its bound (``compute``, ``memory``, ``link``,
  ``atomic``, ``pim``, ``collective``, ``latency``), stretching by contention goes to the
  contended resource's term, idle time goes to what the stream waited for (``host``
  when waiting to be issued, ``link`` for a prefetch copy), and time after the main
  stream's last op to ``link`` (write-backs landing) or ``other`` (other streams). The
  values sum to ``step_time_s``.
* ``bottleneck``: the largest term of ``time_by_bound`` (``host`` reads ``host/launch``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from hw_models.resource_id import BoundLabel, parse, parse_bound
from workloads import kinds
from workloads.payloads import quant

#: significant digits kept in JSON: far below any physical precision, far above float noise
JSON_DIGITS = 12

SUMMARY_KEYS = ("model", "hardware", "phase", "batch", "context", "dtype", "fusion", "launch", "tp", "step_time_s",
                "flops", "bytes", "memory_floor_s", "compute_floor_s", "host_time_s", "device_busy_s", "kernels",
                "bottleneck", "time_by_bound")


def category(bound: str, kind: str = "") -> str:
    """Cost-model bound label (``memory:hbm``, ``link:cxl``, ...) -> a binding term."""
    b = parse_bound(bound)
    own = kinds.get(kind)
    if own is not None and own.category:
        return own.category
    if b == BoundLabel("link", "interconnect"):
        return "collective"
    # ``none`` is an op that takes no time: latency, where it adds nothing
    return "latency" if b.term == "none" else b.term


def resource_category(resource: str) -> str:
    """Shared resource id -> the binding term its contention counts as."""
    return parse(resource).contention_term


def quant_columns(op) -> tuple[str, str]:
    """The ``quant`` and ``quant_path`` columns: which quantised kernel family ran the op and
    its part in it (``workloads.quantize``), "" for a dense op."""
    q = quant(op)
    return (q.family or "", q.path or "") if q is not None else ("", "")


def _round(x: Any) -> Any:
    if isinstance(x, float):
        if x != x or x in (float("inf"), float("-inf")):
            return None
        return float(f"{x:.{JSON_DIGITS}g}")
    if isinstance(x, dict):
        return {str(k): _round(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    if isinstance(x, np.generic):
        return _round(x.item())
    return x


class StepTotals:
    """What every step result reads off its ``totals`` and ``time_by_bound``."""

    __slots__ = ()
    totals: dict[str, Any]
    time_by_bound: dict[str, float]

    @property
    def step_time_s(self) -> float:
        return float(self.totals["step_time_s"])

    @property
    def bottleneck(self) -> str:
        if not self.time_by_bound:
            return "none"
        k = max(sorted(self.time_by_bound), key=lambda b: self.time_by_bound[b])
        return "host/launch" if k == "host" else k


class SimResult(StepTotals):
    """One simulated step. ``ops`` (one row per op, program order) and ``copies``
    (prefetch copies, may be empty) are DataFrames built on first use: a caller that
    wants the totals (a planner sweep) never pays for them."""

    __slots__ = ("meta", "_ops", "_copies", "totals", "time_by_bound", "lanes", "resources")

    def __init__(self, meta: dict[str, Any], ops: Any, copies: Any, totals: dict[str, Any],
                 time_by_bound: dict[str, float], lanes: list | None = None, resources: list | None = None) -> None:
        self.meta = meta
        self._ops = ops  # a DataFrame, or a function that builds it
        self._copies = copies
        self.totals = totals
        self.time_by_bound = time_by_bound
        self.lanes = list(lanes or [])
        self.resources = list(resources or [])

    @property
    def ops(self) -> pd.DataFrame:
        if callable(self._ops):
            self._ops = self._ops()
        return self._ops

    @property
    def copies(self) -> pd.DataFrame:
        if callable(self._copies):
            self._copies = self._copies()
        return self._copies

    def summary(self) -> dict[str, Any]:
        out = {k: self.meta.get(k) for k in SUMMARY_KEYS[:SUMMARY_KEYS.index("step_time_s")]}
        out.update(self.totals)
        out["bottleneck"] = self.bottleneck
        out["time_by_bound"] = dict(sorted(self.time_by_bound.items()))
        q = self.quantized()
        if q:
            out["quantized"] = q
        return out

    def quantized(self) -> dict[str, Any]:
        """Where a quantised step's kernel time goes: per part of the kernel family's path
        (``fused`` GEMMs; ``dequantize`` kernels and the ``dequantized`` dense GEMMs after
        them; ``quantize`` kernels for 8-bit activations), its busy seconds, share of the
        step, op count and the bound that dominates it (by time). Empty when unquantised."""
        if not self.meta.get("quant_kernel"):
            return {}  # only a kernel family marks ops (workloads.quantize): skip building the table
        df = self.ops
        if "quant_path" not in df.columns or not (df["quant_path"] != "").any():
            return {}
        step = self.step_time_s
        parts: dict[str, Any] = {}
        for path, g in df[df["quant_path"] != ""].groupby("quant_path", sort=True):
            by_bound = g.groupby("bound")["duration_s"].sum().sort_values(ascending=False)
            busy = float(g["duration_s"].sum())
            parts[str(path)] = {
                "ops": int(len(g)), "time_s": busy, "share": busy / step if step > 0 else 0.0,
                "dominant": str(by_bound.index[0]) if len(by_bound) else "none",
                "dominant_share": float(by_bound.iloc[0] / busy) if busy > 0 else 0.0,
            }
        return {"kernel": self.meta.get("quant_kernel"), "parts": parts}

    def to_pandas(self) -> pd.DataFrame:
        """Per-op table: id, name, kind, module, device, stream, issue_s, start_s, end_s,
        duration_s, time_s (uncontended), roofline_s, bound, unit (the compute unit that
        ran it), term, resource, flops, bytes, launches, unknown."""
        return self.ops.copy()

    def to_dict(self, ops: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {"summary": self.summary(), "meta": self.meta}
        if ops:
            doc["ops"] = self.ops.to_dict(orient="records")
            doc["copies"] = self.copies.to_dict(orient="records")
        return _round(doc)

    def to_json(self, ops: bool = True) -> str:
        """Deterministic JSON: sorted keys, floats rounded to ``JSON_DIGITS`` significant digits."""
        return json.dumps(self.to_dict(ops), sort_keys=True, separators=(",", ":"))

    def summary_json(self) -> str:
        return json.dumps(_round(self.summary()), sort_keys=True, indent=2)

    def to_perfetto(self, path=None) -> str:
        from .perfetto import trace_json

        return trace_json(self, path)
