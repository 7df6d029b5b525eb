"""reports.roofline_plot: the chart's content (ceilings and points), not just that it renders."""

from __future__ import annotations

import pytest

from hw_models.catalog import load
from reports.roofline_plot import ceilings, plot_roofline
from simulator.roofline import analyze
from workloads.graph import WorkloadGraph
from workloads.op import Access, Op

H = 2048


def small_graph():
    """norm -> view -> GEMV -> copy (a zero-FLOP op that still takes time)."""
    g = WorkloadGraph()
    g.add(Op(0, "aten::rms_norm", "norm", "bf16", {"bf16": 4 * H}, [Access("x", 2 * H, "activation")],
             [Access("h", 2 * H, "activation")]))
    g.add(Op(1, "aten::view", "view", "bf16", {}, [Access("h", 0, "activation")], [Access("v", 0, "activation")],
             launches=0))
    g.add(Op(2, "aten::mm", "matmul", "bf16", {"bf16": 2.0 * H * 4 * H},
             [Access("v", 2 * H, "activation"), Access("w:0", 2 * H * 4 * H, "weight")],
             [Access("u", 8 * H, "activation")], attrs={"m": 1, "n": 4 * H, "k": H, "batch": 1}))
    g.add(Op(3, "aten::copy_", "copy", "bf16", {}, [Access("u", 8 * H, "activation")],
             [Access("y", 8 * H, "activation")]))
    return g


@pytest.mark.parametrize("hw", ["h100-sxm", "xeon-8480"])
def test_chart_has_one_ceiling_per_level_and_dtype_and_every_timed_op(tmp_path, hw):
    system = load(hw)
    df = analyze(small_graph(), system)
    meta = plot_roofline(df, system, tmp_path / "r.png")
    dev = system.device
    assert meta["n_ceilings"] == len(dev.memory) + len(dev.matrix) + len(dev.vector)
    assert meta["n_memory_ceilings"] == len(dev.memory)
    assert meta["n_points"] == int((df["time_s"] > 0).sum())
    assert meta["n_points_without_flops"] == int(((df["time_s"] > 0) & (df["flops"] == 0)).sum()) > 0
    assert any(lv.name in label for label in meta["ceilings"] for lv in dev.memory)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_ceiling_labels_carry_units():
    mem, comp = ceilings(load("h100-sxm"))
    assert any("TB/s" in label for label, _ in mem)
    assert any("matrix bf16" in label and "TFLOP/s" in label for label, _ in comp)


def test_zero_time_ops_are_not_points(tmp_path):
    system = load("h100-sxm")
    df = analyze(small_graph(), system)
    df.loc[df["kind"] == "matmul", "time_s"] = 0.0
    meta = plot_roofline(df, system, tmp_path / "r.png")
    assert meta["n_points"] == int((df["time_s"] > 0).sum())
