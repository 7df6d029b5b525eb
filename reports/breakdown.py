"""Where the step's time went, by op kind and by binding term.

Overlapping ops (several streams, a transfer beside a kernel) would count twice in a
plain sum, so the step is cut at every op start and end and each slice is shared
equally among the ops running in it; slices where no device op runs are the device's
idle time. The parts therefore add up to the step time exactly.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import kind_colour

IDLE = "idle (device waiting)"


def attribute(ops: pd.DataFrame, t0: float, t1: float, by: str) -> pd.DataFrame:
    """Seconds of the window [t0, t1] per value of ``ops[by]``, plus ``IDLE``; sums to t1 - t0."""
    s = np.clip(ops["start_s"].to_numpy(float), t0, t1)
    e = np.clip(ops["end_s"].to_numpy(float), t0, t1)
    keys = ops[by].astype(str).to_numpy()
    edges = np.unique(np.concatenate([[t0, t1], s, e]))
    share: dict[str, float] = {}
    idle = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        active = (s <= a) & (e >= b) & (e > s)
        n = int(active.sum())
        if n == 0:
            idle += b - a
            continue
        for k in keys[active]:
            share[k] = share.get(k, 0.0) + (b - a) / n
    rows = sorted(share.items(), key=lambda kv: -kv[1]) + [(IDLE, idle)]
    out = pd.DataFrame(rows, columns=[by, "time_s"])
    total = t1 - t0
    out["share"] = out["time_s"] / total if total > 0 else 0.0
    return out


def plot_breakdown(by_kind: pd.DataFrame, by_bound: pd.DataFrame, title: str) -> Figure:
    """Two horizontal stacked bars (ms): the step split by op kind and by binding term."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    bound_palette = plt.get_cmap("Set2").colors
    for row, (frame, col) in enumerate(((by_kind, "kind"), (by_bound, "bound"))):
        left = 0.0
        for i, r in enumerate(frame.itertuples(index=False)):
            key, ms = getattr(r, col), r.time_s * 1e3
            if ms <= 0:
                continue
            if key == IDLE:
                colour, hatch = "#ffffff", "//"
            else:
                colour, hatch = (kind_colour(key) if col == "kind" else bound_palette[i % len(bound_palette)]), None
            if key == IDLE:
                # one legend entry for the idle hatch: it is the same time in both bars
                label = f"{IDLE} ({r.share:.0%})" if col == "kind" else None
            else:
                label = f"{col}: {key} ({r.share:.0%})"
            ax.barh(row, ms, left=left, color=colour, hatch=hatch, edgecolor="#444444", linewidth=0.5, label=label)
            left += ms
    ax.set_yticks([0, 1], ["by op kind", "by binding term"])
    ax.invert_yaxis()
    ax.set_xlabel("time in the step (ms)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
