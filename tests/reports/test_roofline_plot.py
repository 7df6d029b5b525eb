"""reports.roofline_plot: the chart's content (ceilings and points), not just that it renders."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.markers import MarkerStyle

from hw_models.catalog import load
from reports.roofline_plot import ceilings, plot_roofline, plt
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


@pytest.fixture
def drawn(monkeypatch):
    """The figures ``plot_roofline`` draws, kept open so the test can read what is on them."""
    figs, close = [], plt.close
    monkeypatch.setattr(plt, "close", figs.append)
    yield figs
    for f in figs:
        close(f)


def _points(ax):
    """(x, y, marker) of every scatter point on the axes, sorted; marker is "v" or "o"."""
    down = MarkerStyle("v")
    down = down.get_path().transformed(down.get_transform()).vertices
    out = []
    for c in ax.collections:
        v = c.get_paths()[0].vertices
        marker = "v" if v.shape == down.shape and np.allclose(v, down) else "o"
        out += [(float(x), float(y), marker) for x, y in c.get_offsets()]
    return sorted(out)


def _same(got, expect):
    assert [m for *_, m in got] == [m for *_, m in expect]
    assert [c for x, y, _ in got for c in (x, y)] == pytest.approx([c for x, y, _ in expect for c in (x, y)], rel=1e-9)


@pytest.mark.parametrize("hw", ["h100-sxm", "xeon-8480"])
def test_chart_draws_the_spec_ceilings_and_every_timed_op_where_it_belongs(tmp_path, hw, drawn):
    system = load(hw)
    g = small_graph()
    df = analyze(g, system)
    time = dict(zip(df["id"], df["time_s"], strict=True))
    plot_roofline(df, system, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    ax = drawn[0].axes[0]
    dev = system.device
    # memory ceilings: one sloped line per level, bandwidth x intensity below the ridge
    slopes = sorted(float(ln.get_ydata()[0] / ln.get_xdata()[0]) for ln in ax.get_lines()
                    if ln.get_label().startswith("memory: "))
    assert slopes == pytest.approx(sorted(lv.bandwidth.value for lv in dev.memory), rel=1e-9)
    # compute ceilings: one flat line per matrix and vector peak
    flats = sorted(float(ln.get_ydata()[0]) for ln in ax.get_lines() if ln.get_label().startswith("compute: "))
    assert flats == pytest.approx(sorted([u.peak.value for u in dev.matrix.values()]
                                         + [u.peak.value for u in dev.vector.values()]), rel=1e-9)
    # ops with FLOPs at (FLOPs / bytes, FLOPs / time), worked out from the graph; the copy
    # (no FLOPs) on the bottom-left corner as a down-triangle; the view (no time) not at all
    x_lo, y_lo = ax.get_xlim()[0], ax.get_ylim()[0]
    expect = [(op.total_flops / op.bytes, op.total_flops / time[op.id], "o") for op in g.ops if op.total_flops]
    expect += [(1.5 * x_lo, 1.5 * y_lo, "v")]
    _same(_points(ax), sorted(expect))


def test_ceiling_labels_carry_units():
    mem, comp = ceilings(load("h100-sxm"))
    assert any("TB/s" in label for label, _ in mem)
    assert any("matrix bf16" in label and "TFLOP/s" in label for label, _ in comp)


def test_zero_time_ops_are_not_points(tmp_path, drawn):
    system = load("h100-sxm")
    df = analyze(small_graph(), system)
    df.loc[df["kind"] == "matmul", "time_s"] = 0.0
    plot_roofline(df, system, tmp_path / "r.png")
    # only the norm (with FLOPs) and the copy (without) are left
    got = _points(drawn[0].axes[0])
    norm = small_graph().ops[0]
    assert [x for x, _, m in got if m == "o"] == pytest.approx([norm.total_flops / norm.bytes])
    assert [m for *_, m in got].count("v") == 1 and len(got) == 2
