"""Roofline chart: each op as a point against the device's memory and compute ceilings.

x = arithmetic intensity (FLOP/byte), y = attained FLOP/s (flops / modelled time), both
log scale. One sloped ceiling per device memory level (bandwidth x intensity), one flat
ceiling per dtype peak of the matrix and vector units. Points are sized by their share
of the step time and coloured by op kind. Ops that take time but do no FLOPs (copies,
gathers) cannot sit on a log axis; they are drawn on the chart's bottom edge with a
down-triangle so the time they take stays visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hw_models import units  # noqa: E402


def ceilings(system) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(memory ceilings [(label, bytes/s)], compute ceilings [(label, FLOP/s)]) of the system's device."""
    dev = system.device
    mem = [(f"{lv.name} {units.fmt(lv.bandwidth.value, 'bandwidth')}", lv.bandwidth.value) for lv in dev.memory]
    comp = [(f"matrix {dt} {units.fmt(u.peak.value, 'flop_rate')}", u.peak.value) for dt, u in dev.matrix.items()]
    comp += [(f"vector {dt} {units.fmt(u.peak.value, 'flop_rate')}", u.peak.value) for dt, u in dev.vector.items()]
    return mem, comp


def plot_roofline(df: pd.DataFrame, system, path: str | Path, title: str | None = None) -> dict[str, Any]:
    """Draw ``df`` (from ``simulator.roofline.analyze``) on ``system``'s ceilings into ``path``.

    Returns what was drawn: ceiling labels, counts of ceilings and points, and the path.
    """
    mem, comp = ceilings(system)
    ops = df[df["time_s"] > 0]
    with_flops = ops[(ops["flops"] > 0) & (ops["bytes"] > 0)]
    no_flops = ops.drop(with_flops.index)

    peak_max = max(p for _, p in comp)
    bw_min = min(b for _, b in mem)
    xs = with_flops["intensity"].to_numpy(dtype=float)
    ys = (with_flops["flops"] / with_flops["time_s"]).to_numpy(dtype=float)
    ridge = [p / b for _, p in comp for _, b in mem]
    x_lo = min([*xs, *ridge, 1.0]) / 10
    x_hi = max([*xs, *ridge, 1.0]) * 10
    y_lo = min([*ys, bw_min * x_lo]) / 10
    y_hi = peak_max * 3

    fig, ax = plt.subplots(figsize=(10, 6.5))
    xgrid = np.logspace(np.log10(x_lo), np.log10(x_hi), 200)
    drawn = []
    for (label, bw), color in zip(mem, plt.cm.Blues(np.linspace(0.45, 0.95, len(mem))), strict=True):
        ax.plot(xgrid, np.minimum(bw * xgrid, peak_max), color=color, lw=1.6, label=f"memory: {label}")
        drawn.append(f"memory: {label}")
    for (label, peak), color in zip(comp, plt.cm.Reds(np.linspace(0.35, 0.95, len(comp))), strict=True):
        ax.axhline(peak, color=color, lw=1.2, ls="--", label=f"compute: {label}")
        drawn.append(f"compute: {label}")

    total = float(ops["time_s"].sum()) or 1.0
    kinds = sorted(ops["kind"].unique())
    cmap = plt.get_cmap("tab10" if len(kinds) <= 10 else "tab20")
    n_points = 0
    for i, kind in enumerate(kinds):
        color = cmap(i % cmap.N)
        k = with_flops[with_flops["kind"] == kind]
        if len(k):
            ax.scatter(k["intensity"], k["flops"] / k["time_s"], s=15 + 600 * k["time_s"] / total,
                       color=color, alpha=0.7, edgecolors="black", linewidths=0.3, label=f"op: {kind}")
        z = no_flops[no_flops["kind"] == kind]
        if len(z):
            ax.scatter(np.full(len(z), x_lo * 1.5), np.full(len(z), y_lo * 1.5), s=15 + 600 * z["time_s"] / total,
                       color=color, marker="v", alpha=0.7, edgecolors="black", linewidths=0.3,
                       label=None if len(k) else f"op: {kind}")
        n_points += len(k) + len(z)

    ax.set(xscale="log", yscale="log", xlim=(x_lo, x_hi), ylim=(y_lo, y_hi),
           xlabel="arithmetic intensity (FLOP/byte)", ylabel="attained performance (FLOP/s)")
    ax.set_title(title or f"Roofline on {system.name}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {
        "path": str(path),
        "ceilings": drawn,
        "n_ceilings": len(drawn),
        "n_memory_ceilings": len(mem),
        "n_compute_ceilings": len(comp),
        "n_points": n_points,
        "n_points_without_flops": int(len(no_flops)),
    }
