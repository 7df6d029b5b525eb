"""Timeline of one simulated step: one lane per host dispatch track, device stream and
link direction, with the gaps where a device stream sits idle shaded, so a host-bound
step shows up as a host lane that is always busy above a stream lane full of holes."""

from __future__ import annotations

from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .figures import kind_colour
from .frames import LANE_TYPES, timeline

_HOST_COLOUR = "#34495e"
_IDLE_COLOUR = "#f4a6a6"
ZOOM_OPS = 30


def lanes(tl: pd.DataFrame) -> list[str]:
    """Lane order: host tracks, then streams, then links, each sorted by name."""
    order = {t: i for i, t in enumerate(LANE_TYPES)}
    pairs = tl[["lane", "lane_type"]].drop_duplicates()
    return [r.lane for r in sorted(pairs.itertuples(index=False), key=lambda r: (order[r.lane_type], r.lane))]


def idle_gaps(tl: pd.DataFrame, lane: str, t0: float, t1: float) -> list[tuple[float, float]]:
    """(start, length) of the idle stretches of ``lane`` inside [t0, t1]."""
    rows = tl[tl["lane"] == lane].sort_values("start_s")
    gaps, cur = [], t0
    for s, e in zip(rows["start_s"], rows["end_s"], strict=True):
        if s > cur:
            gaps.append((cur, s - cur))
        cur = max(cur, e)
    if t1 > cur:
        gaps.append((cur, t1 - cur))
    return gaps


def _label(lane: str, ltype: str) -> str:
    return "host dispatch" if ltype == "host" and lane == "host" else f"{lane} ({ltype})"


def zoom_window(tl: pd.DataFrame, t0: float, t1: float, ops: int = ZOOM_OPS) -> float | None:
    """End of a window from the step start that holds the first ``ops`` stream ops, when that is
    a small part of the step (so single kernels and the gaps between them become visible)."""
    stream = tl[(tl["lane_type"] == "stream") & (tl["end_s"] > tl["start_s"])].sort_values("start_s")
    if len(stream) <= ops:
        return None
    end = float(stream["end_s"].iloc[ops - 1])
    return end if end - t0 < 0.35 * (t1 - t0) else None


def _draw(ax, tl: pd.DataFrame, names: list[str], t0: float, t1: float, edges: bool = True) -> set[str]:
    kinds_seen: set[str] = set()
    for y, lane in enumerate(names):
        rows = tl[tl["lane"] == lane]
        ltype = rows["lane_type"].iat[0]
        if ltype == "stream":
            gaps = idle_gaps(tl, lane, t0, t1)
            ax.broken_barh([((s - t0) * 1e3, w * 1e3) for s, w in gaps], (y - 0.42, 0.84),
                           facecolors=_IDLE_COLOUR, alpha=0.55, linewidth=0)
        by_colour: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for s, e, k in zip(rows["start_s"], rows["end_s"], rows["kind"], strict=True):
            colour = _HOST_COLOUR if ltype == "host" else kind_colour(k)
            if ltype != "host":
                kinds_seen.add(k)
            by_colour[colour].append(((s - t0) * 1e3, max(e - s, 0.0) * 1e3))
        for colour, bars in by_colour.items():
            # white separators show single kernels when zoomed; on a whole step they would wash the bars out
            ax.broken_barh(bars, (y - 0.32, 0.64), facecolors=colour, edgecolor="white" if edges else "none",
                           linewidth=0.3 if edges else 0)
    ax.set_yticks(np.arange(len(names)), [_label(n, tl.loc[tl["lane"] == n, "lane_type"].iat[0]) for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    return kinds_seen


def plot_timeline(sim_frame: pd.DataFrame, title: str, zoom: bool = True) -> Figure:
    """Gantt chart of one step from the long simulation frame (``frames.from_sim``), times in
    ms from the step start. Below the whole step, a zoom on its first few kernels when the
    step has too many to see one by one."""
    tl = timeline(sim_frame)
    tl = tl[(tl["end_s"] > tl["start_s"]) | (tl["lane_type"] == "host")]  # views launch nothing
    if tl.empty:
        raise ValueError("the simulation frame has no host, stream or link rows to draw")
    t0, t1 = float(tl["start_s"].min()), float(tl["end_s"].max())
    names = lanes(tl)
    z_end = zoom_window(tl, t0, t1) if zoom else None
    h = 0.9 + 0.55 * len(names)
    if z_end is None:
        fig, axes = plt.subplots(figsize=(12, h))
        axes = [axes]
    else:
        fig, axes = plt.subplots(2, 1, figsize=(12, 2 * h + 0.6))
    kinds_seen = _draw(axes[0], tl, names, t0, t1, edges=len(tl) <= 4 * ZOOM_OPS)
    axes[0].set_xlim(0, (t1 - t0) * 1e3)
    axes[0].set_xlabel("time since step start (ms)")
    axes[0].set_title(title)
    if z_end is not None:
        _draw(axes[1], tl, names, t0, t1)
        axes[1].set_xlim(0, (z_end - t0) * 1e3)
        axes[1].set_xlabel("time since step start (ms), first kernels only")
        span = z_end - t0
        span_txt = f"{span * 1e3:.3g} ms" if span >= 1e-3 else f"{span * 1e6:.3g} µs"
        axes[1].set_title(f"Zoom (shaded above): the first {ZOOM_OPS} kernels, {span_txt}", fontsize=10)
        axes[0].axvspan(0, (z_end - t0) * 1e3, color="#3366cc", alpha=0.12, zorder=0)
    handles = [Patch(facecolor=_HOST_COLOUR, label="host dispatch")]
    handles += [Patch(facecolor=kind_colour(k), label=k) for k in sorted(kinds_seen)]
    handles.append(Patch(facecolor=_IDLE_COLOUR, alpha=0.55, label="device stream idle"))
    axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                   title="lane content")
    fig.tight_layout()
    return fig
