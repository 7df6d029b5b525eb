"""Throughput against time per output token over a batch sweep, one curve per hardware:
the serving frontier. Moving right along a curve buys tokens/s with latency."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator


def plot_frontier(plan: pd.DataFrame, title: str, slo_tpot_ms: float | None = None) -> Figure:
    """``plan``: columns hardware, batch, tpot_s, tokens_per_s (per replica; feasible rows only)."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, (hw, g) in enumerate(plan.sort_values("batch").groupby("hardware", sort=True)):
        line = ax.plot(g["tpot_s"] * 1e3, g["tokens_per_s"], marker="o", label=hw)[0]
        # alternate label sides so curves that share a TPOT do not print on top of each other
        offset, align = ((5, -10), "left") if i % 2 == 0 else ((-5, 4), "right")
        for b, x, y in zip(g["batch"], g["tpot_s"] * 1e3, g["tokens_per_s"], strict=True):
            ax.annotate(f"b={int(b)}", (x, y), textcoords="offset points", xytext=offset, ha=align, fontsize=7,
                        color=line.get_color())
    if slo_tpot_ms:
        ax.axvline(slo_tpot_ms, color="#d62728", linestyle="--", linewidth=1, label=f"TPOT SLO {slo_tpot_ms:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers read faster than 2×10¹ on a narrow range
        axis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.margins(x=0.08, y=0.08)  # room for the batch labels at the ends
    ax.set_xlabel("time per output token, TPOT (ms)")
    ax.set_ylabel("decode throughput (tokens/s per replica)")
    ax.set_title(title)
    ax.legend(title="hardware (batch labelled)", fontsize=8)
    ax.grid(which="both", alpha=0.25)
    fig.tight_layout()
    return fig
