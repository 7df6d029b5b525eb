"""The analytic roofline: every op's cost against its ceilings, as a table.

``analyze`` prices each op alone (``graph_costs``: no host dispatch, no overlap, no
contention) and returns one row per op; ``totals`` sums it. The simulator adds time
on top of this (launch overhead, starvation, sharing), so the sum of op times here is a
lower bound on a real step and the sum of ``roofline_s`` a lower bound on that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .costmodel import graph_costs
from .placement import Placement
from .result import quant_columns

COLUMNS = [
    "id", "name", "kind", "module", "dtype", "flops", "bytes", "intensity", "time_s", "roofline_s",
    "bound", "compute_s", "memory_s", "fixed_s", "atomic_s", "pim_s", "share", "launches", "unit", "unknown",
    "quant", "quant_path",
]


def analyze(graph, system, placement: Placement | None = None) -> pd.DataFrame:
    """One row per op of ``graph`` on ``system``; ``share`` is its fraction of the summed op time."""
    costs = graph_costs(graph, system, placement or Placement())
    rows = []
    for op, c in zip(graph.ops, costs, strict=True):
        rows.append((op.id, op.name, op.kind, op.module, op.dtype, op.total_flops,
                     float(op.bytes), c.time_s, c.roofline_s, c.bound, c.compute_s, c.memory_s, c.fixed_s,
                     c.atomic_s, c.pim_s, c.launches, c.unit, c.unknown,
                     *quant_columns(op)))
    cols = [c for c in COLUMNS if c not in ("intensity", "share")]
    df = pd.DataFrame(rows, columns=cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["intensity"] = np.where(df["bytes"] > 0, df["flops"] / df["bytes"].where(df["bytes"] > 0, 1), np.nan)
    total = df["time_s"].sum()
    df["share"] = df["time_s"] / total if total > 0 else 0.0
    return df[COLUMNS]


def totals(df: pd.DataFrame) -> dict[str, Any]:
    """Summed op time, roofline floor, FLOPs, bytes, kernels, and time per bound."""
    by_bound = df.groupby("bound")["time_s"].sum().sort_values(ascending=False)
    t = float(df["time_s"].sum())
    return {
        "time_s": t,
        "roofline_s": float(df["roofline_s"].sum()),
        "flops": float(df["flops"].sum()),
        "bytes": float(df["bytes"].sum()),
        "ops": int(len(df)),
        "kernels": int(df["launches"].sum()),
        "unknown_ops": int(df["unknown"].sum()),
        "achieved_flop_s": float(df["flops"].sum()) / t if t > 0 else 0.0,
        "time_by_bound": {str(k): float(v) for k, v in by_bound.items()},
    }


def top(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` ops with the most time."""
    return df.sort_values("time_s", ascending=False).head(n)
