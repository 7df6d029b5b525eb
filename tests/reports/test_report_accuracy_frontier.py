import numpy as np
import pandas as pd

from reports.accuracy_plot import error_by_kind, plot_error_by_kind, plot_pred_vs_measured
from reports.frontier_plot import plot_frontier


def _pvm(n=40, seed=0):
    rng = np.random.default_rng(seed)
    measured = 10 ** rng.uniform(-6, -3, n)
    kinds = np.array(["matmul", "elementwise", "gemv", "norm"])[np.arange(n) % 4]
    err = np.where(kinds == "matmul", 0.05, 0.3) * rng.choice([-1, 1], n)
    return pd.DataFrame({"kind": kinds, "measured_s": measured, "predicted_s": measured * (1 + err)})


def test_error_by_kind_matches_hand_computation():
    df = _pvm()
    t = error_by_kind(df).set_index("kind")
    assert t.loc["matmul", "within_10pct"] == 1.0 and t.loc["gemv", "within_10pct"] == 0.0
    assert np.isclose(t.loc["matmul", "median_ape"], 0.05)
    assert np.isclose(t.loc["norm", "median_ape"], 0.3)
    assert t["n"].sum() == len(df)
    assert t.index[0] != "matmul"  # worst kind first


def test_scatter_is_log_log_with_identity_band_and_every_case():
    df = _pvm()
    fig = plot_pred_vs_measured(df, "t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "(µs)" in ax.get_xlabel() and "(µs)" in ax.get_ylabel()
    points = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets()) and c.get_label() != "±10% band")
    assert points == len(df)
    line = ax.get_lines()[0]
    assert np.allclose(line.get_xdata(), line.get_ydata())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "±10% band" in labels and any(lbl.startswith("matmul") for lbl in labels)


def test_error_bars_one_per_kind():
    t = error_by_kind(_pvm())
    fig = plot_error_by_kind(t, "t")
    assert len(fig.axes[0].patches) == len(t)


def test_frontier_one_curve_per_hardware_through_each_batch():
    rows = []
    for hw, bw in (("h100-sxm", 3.35), ("l4", 0.3)):
        for b in (1, 4, 16):
            tpot = 16e9 / (bw * 1e12) * (1 + 0.01 * b)
            rows.append({"hardware": hw, "batch": b, "tpot_s": tpot, "tokens_per_s": b / tpot})
    df = pd.DataFrame(rows)
    fig = plot_frontier(df, "t", slo_tpot_ms=50)
    ax = fig.axes[0]
    curves = [ln for ln in ax.get_lines() if ln.get_label() in ("h100-sxm", "l4")]
    assert len(curves) == 2
    for ln in curves:
        g = df[df["hardware"] == ln.get_label()]
        assert np.allclose(sorted(ln.get_xdata()), sorted(g["tpot_s"] * 1e3))
    assert "TPOT" in ax.get_xlabel() and "tokens/s" in ax.get_ylabel()
