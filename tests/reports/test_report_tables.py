import numpy as np
import pandas as pd
from report_fakes import fake_step

from reports.frames import device_ops
from reports.report import comparison, section, top_groups, top_ops


def _graph_ops(n):
    return pd.DataFrame({"id": range(n), "module": [f"model.layers.{i // 4}.block" for i in range(n)],
                         "flops": 2.0, "bytes": 1.0})


def test_groups_fold_layers_and_keep_every_op_and_second():
    summary, frame = fake_step(n_ops=16, link=False)
    ops = device_ops(frame)
    g = top_groups(ops, summary["step_time_s"], _graph_ops(16), n=100)
    assert set(g["where"]) == {"model.layers.*.block"}
    assert g["count"].sum() == len(ops) == 16
    assert np.isclose(g["time_ms"].sum() / 1e3, ops["time_s"].sum())
    assert g["time_ms"].is_monotonic_decreasing


def test_top_ops_are_the_longest_in_order():
    summary, frame = fake_step(n_ops=16, link=False)
    ops = device_ops(frame)
    t = top_ops(ops, summary["step_time_s"], _graph_ops(16), n=5)
    assert len(t) == 5 and t["time_us"].is_monotonic_decreasing
    assert np.isclose(t["time_us"].iat[0], ops["time_s"].max() * 1e6)
    assert (t["intensity"] == 2.0).all()


def test_comparison_row_per_run(tmp_path):
    secs = []
    for i, hw in enumerate(("x", "y")):
        s, f = fake_step(n_ops=8, dispatch_s=(i + 1) * 2e-6)
        s["hardware"] = hw
        secs.append(section(s, f, tmp_path / hw))
    c = comparison(secs)
    assert c["hardware"].tolist() == ["x", "y"]
    assert np.allclose(c["step_ms"], [s.summary["step_time_s"] * 1e3 for s in secs])
    assert np.allclose(c["tokens_per_s"], [1 / s.summary["step_time_s"] for s in secs])
    assert ((c["device_idle"] >= 0) & (c["device_idle"] <= 1)).all()
