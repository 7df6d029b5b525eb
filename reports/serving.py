"""Figures of a serving simulation (``simulator.serving.ServeResult``): latency CDFs and
batch size / KV use over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def latency_cdf(res, path: str | Path) -> Path:
    """Empirical CDFs of TTFT, TPOT and E2E (ms), P50/P99 marked."""
    df = res.requests
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (col, label) in zip(axes, (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")), strict=True):
        x = np.sort(df[col].to_numpy(float) * 1e3)
        x = x[np.isfinite(x)]
        if len(x):
            ax.plot(x, np.arange(1, len(x) + 1) / len(x), color="#2c7fb8")
            for q, ls in ((50, ":"), (99, "--")):
                v = float(np.percentile(x, q))
                ax.axvline(v, color="#555", ls=ls, lw=1)
                ax.text(v, 0.02 + 0.1 * (q == 99), f" P{q} {v:.4g}", fontsize=8)
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of requests")
    c = res.config
    fig.suptitle(f"{c['model']} on {c['num_replicas']} x {c['hardware']} tp {c['tp']}, {c['scheduler']}")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def timeline_figure(res, path: str | Path, bins: int = 200) -> Path:
    """Sequences per step, KV-cache use and queue length over time (averaged per bin)."""
    tl = res.timeline(bins)
    fig, axes = plt.subplots(3, 1, figsize=(11, 6.5), sharex=True)
    axes[0].plot(tl["t_s"], tl["batch_seqs"], color="#2c7fb8")
    axes[0].set_ylabel("sequences / step")
    axes[1].plot(tl["t_s"], 100 * tl["kv_use"], color="#d95f0e")
    axes[1].set_ylabel("KV use (%)")
    axes[1].set_ylim(0, 100)
    axes[2].plot(tl["t_s"], tl["waiting"], color="#636363")
    axes[2].set_ylabel("waiting")
    axes[2].set_xlabel("time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
