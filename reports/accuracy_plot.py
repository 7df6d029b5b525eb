"""Predicted against measured: a log-log scatter with the y = x line and a ±10% band, and
the error per op kind. Input: one row per measured case with ``kind``, ``predicted_s``
and ``measured_s``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import kind_colour

BAND = 0.10


def with_errors(df: pd.DataFrame) -> pd.DataFrame:
    out = df[(df["measured_s"] > 0) & (df["predicted_s"] > 0)].copy()
    out["error"] = out["predicted_s"] / out["measured_s"] - 1.0
    out["ape"] = out["error"].abs()
    return out


def error_by_kind(df: pd.DataFrame) -> pd.DataFrame:
    """Per kind: n, median and p90 absolute percentage error, fraction within ±10%, median signed error."""
    e = with_errors(df)
    g = e.groupby("kind")
    out = pd.DataFrame({
        "n": g.size(),
        "median_ape": g["ape"].median(),
        "p90_ape": g["ape"].quantile(0.9),
        "within_10pct": g["ape"].apply(lambda s: float((s <= BAND).mean())),
        "median_error": g["error"].median(),
    }).reset_index()
    return out.sort_values("median_ape", ascending=False).reset_index(drop=True)


def plot_pred_vs_measured(df: pd.DataFrame, title: str) -> Figure:
    e = with_errors(df)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    lo = float(min(e["measured_s"].min(), e["predicted_s"].min())) * 1e6 / 2
    hi = float(max(e["measured_s"].max(), e["predicted_s"].max())) * 1e6 * 2
    xs = np.geomspace(lo, hi, 50)
    ax.fill_between(xs, xs * (1 - BAND), xs * (1 + BAND), color="#cccccc", alpha=0.6, label="±10% band")
    ax.plot(xs, xs, color="black", linewidth=1, label="y = x (perfect prediction)")
    for kind, g in e.groupby("kind"):
        ax.scatter(g["measured_s"] * 1e6, g["predicted_s"] * 1e6, s=18, color=kind_colour(kind), alpha=0.8,
                   edgecolor="none", label=f"{kind} (n={len(g)})")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured time (µs)",
           ylabel="predicted time (µs)")
    within = float((e["ape"] <= BAND).mean()) if len(e) else float("nan")
    ax.set_title(f"{title}\nmedian |error| {e['ape'].median():.1%}, {within:.0%} within ±10% (n={len(e)})")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(which="both", alpha=0.2)
    fig.tight_layout()
    return fig


def plot_error_by_kind(table: pd.DataFrame, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.4 * max(len(table), 1)))
    y = np.arange(len(table))
    ax.barh(y, table["median_ape"] * 100, color=[kind_colour(k) for k in table["kind"]], label="median |error|")
    ax.scatter(table["p90_ape"] * 100, y, marker="|", s=200, color="black", label="90th percentile |error|")
    ax.axvline(BAND * 100, color="#d62728", linestyle="--", linewidth=1, label="10% goal")
    ax.set_yticks(y, [f"{k} (n={n})" for k, n in zip(table["kind"], table["n"], strict=True)])
    ax.invert_yaxis()
    ax.set_xlabel("absolute prediction error (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
