import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models.intervals import union_length
from reports.breakdown import IDLE, attribute, plot_breakdown
from reports.frames import device_ops

intervals = st.lists(
    st.tuples(st.floats(0, 1e-3), st.floats(0, 1e-3), st.sampled_from(["matmul", "norm", "attention"])),
    min_size=1, max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(intervals, st.floats(0, 5e-4))
def test_parts_sum_to_step_time_even_with_overlap(iv, extra):
    ops = pd.DataFrame([(min(a, b), max(a, b), k) for a, b, k in iv], columns=["start_s", "end_s", "kind"])
    t0, t1 = 0.0, float(ops["end_s"].max()) + extra
    out = attribute(ops, t0, t1, "kind")
    assert np.isclose(out["time_s"].sum(), t1 - t0, rtol=1e-9, atol=1e-15)
    assert np.isclose(out["share"].sum(), 1.0) or t1 == t0
    # idle is exactly the time no op covers
    idle = float(out.loc[out["kind"] == IDLE, "time_s"].iat[0])
    assert np.isclose(idle, (t1 - t0) - union_length(ops["start_s"].to_numpy(), ops["end_s"].to_numpy()), atol=1e-15)


def test_without_overlap_each_kind_gets_its_own_durations(step):
    summary, frame = step
    ops = device_ops(frame)
    streams = ops[~ops["kind"].eq("transfer")]
    out = attribute(streams, 0.0, summary["step_time_s"], "kind").set_index("kind")["time_s"]
    for kind, g in streams.groupby("kind"):
        assert np.isclose(out[kind], g["time_s"].sum())


def test_breakdown_figure_has_both_bars_and_their_totals_equal_step(step):
    summary, frame = step
    ops = device_ops(frame)
    step_s = summary["step_time_s"]
    fig = plot_breakdown(attribute(ops, 0, step_s, "kind"), attribute(ops, 0, step_s, "bound"), "t")
    ax = fig.axes[0]
    assert ax.get_xlabel().endswith("(ms)") and ax.get_title()
    rows = {}
    for p in ax.patches:
        y = round(p.get_y() + p.get_height() / 2)
        rows[y] = rows.get(y, 0.0) + p.get_width()
    assert sorted(rows) == [0, 1]
    for total in rows.values():
        assert np.isclose(total, step_s * 1e3)
    assert ax.get_legend() is not None
