import numpy as np
from report_fakes import fake_step

from reports.frames import canonical, lane_type, timeline
from reports.timeline_plot import idle_gaps, lanes, plot_timeline


def test_lane_types():
    assert lane_type("host") == "host"
    assert lane_type("dev0.stream1") == "stream"
    assert lane_type("host.link.h2d") == "link"
    assert lane_type("cxl.link.d2h") == "link"
    assert lane_type("interconnect.3") == "link"
    assert lane_type("dev0.hbm") == "memory"


def test_one_lane_per_host_stream_and_link():
    summary, frame = fake_step(n_ops=16, streams=3)
    fig = plot_timeline(frame, "t")
    ax = fig.axes[0]
    labels = [t.get_text().split(" ")[0] for t in ax.get_yticklabels()]
    expected = {r for r in frame["resource"].unique() if lane_type(r) in ("host", "stream", "link")}
    assert sorted(labels) == sorted(expected)
    assert labels[0] == "host" and labels[-1] == "host.link.h2d"  # host on top, links at the bottom
    assert "dev0.hbm" not in labels
    assert ax.get_xlabel() == "time since step start (ms)" and ax.get_title() == "t"
    assert ax.get_legend() is not None


def test_every_interval_is_drawn_and_idle_gaps_complement_busy_time():
    summary, frame = fake_step(n_ops=10)
    tl = timeline(frame)
    fig = plot_timeline(frame, "t")
    drawn = sum(len(c.get_paths()) for c in fig.axes[0].collections)
    t0, t1 = tl["start_s"].min(), tl["end_s"].max()
    gaps = {ln: idle_gaps(tl, ln, t0, t1) for ln in lanes(tl) if ln.startswith("dev")}
    assert drawn == len(tl) + sum(len(g) for g in gaps.values())
    rows = tl[tl["lane"] == "dev0.stream0"]
    busy = (rows["end_s"] - rows["start_s"]).sum()
    assert np.isclose(sum(w for _, w in gaps["dev0.stream0"]), (t1 - t0) - busy)


def test_host_bound_step_has_idle_gaps_and_device_bound_has_none():
    _, slow_host = fake_step(n_ops=20, dispatch_s=10e-6, kernel_s=(1e-6,), link=False)
    _, fast_host = fake_step(n_ops=20, dispatch_s=0.1e-6, kernel_s=(10e-6,), link=False)
    for frame, host_bound in ((slow_host, True), (fast_host, False)):
        tl = timeline(frame)
        t0 = tl["start_s"].min()
        t1 = tl["end_s"].max()
        idle = sum(w for _, w in idle_gaps(tl, "dev0.stream0", t0, t1))
        assert (idle / (t1 - t0) > 0.5) == host_bound


def test_canonical_accepts_engine_aliases():
    _, frame = fake_step(n_ops=3)
    renamed = frame.rename(columns={"resource": "lane", "start_s": "start", "end_s": "end"})
    assert canonical(renamed)["lane"].tolist() == canonical(frame)["lane"].tolist()
