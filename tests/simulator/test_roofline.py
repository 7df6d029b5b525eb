"""simulator.roofline (the per-op table) and the ``roofsim roofline`` command."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hw_models.catalog import load
from simulator.costmodel import graph_costs
from simulator.placement import Placement
from simulator.roofline import COLUMNS, analyze, top, totals
from workloads.graph import WorkloadGraph
from workloads.op import Access, Op

H = 2048


def small_graph(layers=2):
    g = WorkloadGraph(meta={"model": "tiny", "phase": "decode", "batch": 1, "context": 128, "dtype": "bf16"})
    i = 0
    x = "x0"
    for layer in range(layers):
        g.add(Op(i, "aten::rms_norm", "norm", "bf16", {"bf16": 4 * H}, [Access(x, 2 * H, "activation")],
                 [Access(f"h{layer}", 2 * H, "activation")], module=f"layers.{layer}.norm"))
        g.add(Op(i + 1, "aten::view", "view", "bf16", {}, [Access(f"h{layer}", 0, "activation")],
                 [Access(f"v{layer}", 0, "activation")], launches=0, module=f"layers.{layer}"))
        g.add(Op(i + 2, "aten::mm", "matmul", "bf16", {"bf16": 2.0 * H * 4 * H},
                 [Access(f"v{layer}", 2 * H, "activation"), Access(f"w:{layer}", 2 * H * 4 * H, "weight")],
                 [Access(f"u{layer}", 8 * H, "activation")], attrs={"m": 1, "n": 4 * H, "k": H, "batch": 1},
                 module=f"layers.{layer}.mlp"))
        g.add(Op(i + 3, "aten::copy_", "copy", "bf16", {}, [Access(f"u{layer}", 8 * H, "activation")],
                 [Access(f"x{layer + 1}", 8 * H, "activation")], module=f"layers.{layer}"))
        x = f"x{layer + 1}"
        i += 4
    return g


@pytest.fixture(scope="module")
def h100():
    return load("h100-sxm")


def test_analyze_one_row_per_op_matching_the_cost_model(h100):
    g = small_graph()
    df = analyze(g, h100)
    assert list(df.columns) == COLUMNS
    assert list(df["id"]) == [op.id for op in g.ops]
    costs = graph_costs(g, h100)
    assert list(df["time_s"]) == [c.time_s for c in costs]
    assert list(df["bound"]) == [c.bound for c in costs]
    assert (df["roofline_s"] <= df["time_s"]).all()
    assert df["share"].sum() == pytest.approx(1.0)
    mm = df[df["kind"] == "matmul"].iloc[0]
    assert mm["intensity"] == pytest.approx(mm["flops"] / mm["bytes"])
    view = df[df["kind"] == "view"].iloc[0]
    assert view["time_s"] == 0 and view["bound"] == "none" and math.isnan(view["intensity"])


def test_totals_and_top(h100):
    df = analyze(small_graph(), h100)
    t = totals(df)
    assert t["time_s"] == pytest.approx(df["time_s"].sum())
    assert t["flops"] == pytest.approx(df["flops"].sum())
    assert t["bytes"] == pytest.approx(df["bytes"].sum())
    assert t["roofline_s"] <= t["time_s"]
    assert sum(t["time_by_bound"].values()) == pytest.approx(t["time_s"])
    assert t["kernels"] == 6
    best = top(df, 2)
    assert len(best) == 2 and best["time_s"].iloc[0] == df["time_s"].max()


def test_far_weights_slow_the_table_down(h100):
    near = totals(analyze(small_graph(), h100))["time_s"]
    far = totals(analyze(small_graph(), h100, Placement(weights="host")))["time_s"]
    assert far > near


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def fake_build(monkeypatch):
    calls = []

    def build(model, **kw):
        calls.append((model, kw))
        return small_graph(layers=3)

    import roofsim.commands.roofline as cmd

    monkeypatch.setattr(cmd, "_build", build)
    return calls


def test_roofline_command_writes_csv_and_chart(tmp_path, capsys, fake_build):
    from roofsim.cli import main

    out = tmp_path / "deep" / "demo"
    rc = main(["roofline", "tiny", "--hardware", "h100-sxm", "--phase", "decode", "--batch", "2",
               "--context", "128", "--top", "3", "--out", str(out)])
    assert rc == 0
    assert fake_build[0] == ("tiny", {"phase": "decode", "batch": 2, "context": 128, "prompt": 512, "dtype": "bf16",
                                     "given": {"phase", "batch", "context"}, "fusion": "none"})
    df = pd.read_csv(out / "ops.csv")
    assert len(df) == 12 and set(COLUMNS) <= set(df.columns)
    png = (out / "roofline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "sum of op times" in text and "FLOPs" in text and "bytes" in text
    assert text.count("aten::mm") == 3  # the top 3 ops by time are the matmuls
    assert "memory:" in text or "latency" in text


def test_roofline_command_unknown_hardware_writes_nothing(tmp_path, capsys, fake_build):
    from roofsim.cli import main

    out = tmp_path / "o"
    rc = main(["roofline", "tiny", "--hardware", "no-such-gpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists() and not fake_build
    assert len(err.strip().splitlines()) == 1 and "no-such-gpu" in err


def test_roofline_command_bad_tier_is_one_line(tmp_path, capsys, fake_build):
    from roofsim.cli import main

    rc = main(["roofline", "tiny", "--hardware", "h100-sxm", "--weights", "cxl", "--out", str(tmp_path / "o")])
    assert rc == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
