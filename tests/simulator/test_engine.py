"""The simpy engine's physics on hand-made graphs with a stand-in cost function."""

from __future__ import annotations

import pytest
import simpy
from sim_helpers import h100, make_graph, stub_costs

from simulator import SimulationError, simulate
from simulator.placement import Placement
from simulator.resources import SharedBandwidth


def sim(specs, engine="simpy", **kw):
    return simulate(make_graph(specs), h100(), engine=engine, cost_fn=stub_costs, **kw)


def test_launch_bound_regime_emerges_from_dispatch():
    # 100 ops of 1 us behind 12 us of eager dispatch each: the device waits for the host,
    # so the step is the host's time plus the last op, far above the sum of op times.
    sys_ = h100()
    disp = sys_.host.dispatch_overhead.value
    r = sim([{"dur": 1e-6}] * 100)
    assert r.step_time_s == pytest.approx(100 * disp + 1e-6, rel=1e-9)
    assert r.summary()["bottleneck"] == "host/launch"
    tbb = r.summary()["time_by_bound"]
    assert tbb["host"] == pytest.approx(100 * disp - 99e-6, rel=1e-9)
    assert sum(tbb.values()) == pytest.approx(r.step_time_s, rel=1e-9)


def test_long_ops_hide_dispatch():
    # ops of 100 us hide a 12 us dispatch: only the first dispatch shows
    disp = h100().host.dispatch_overhead.value
    r = sim([{"dur": 100e-6}] * 20)
    assert r.step_time_s == pytest.approx(disp + 20 * 100e-6, rel=1e-9)
    assert r.summary()["bottleneck"] == "compute"


def test_graph_launch_pays_once_plus_per_node():
    h = h100().host
    r = sim([{"dur": 1e-7}] * 50, launch="graph")
    expect = h.graph_launch.value + 50 * h.graph_node_cost.value + 1e-7
    assert r.step_time_s == pytest.approx(expect, rel=1e-9)
    assert r.step_time_s < sim([{"dur": 1e-7}] * 50, launch="eager").step_time_s


def test_views_cost_the_host_nothing():
    disp = h100().host.dispatch_overhead.value
    r = sim([{"dur": 1e-6}, {"dur": 0.0, "launches": 0}, {"dur": 1e-6}])
    assert r.summary()["host_time_s"] == pytest.approx(2 * disp)
    assert r.summary()["kernels"] == 2


def test_two_streams_share_one_memory():
    # two ops on different streams, each moving 1 MB at 1 GB/s (1 ms alone) through the
    # same resource. Op 1 is issued one graph node (c) after op 0, so op 0 runs alone for c,
    # then both at half rate: op 0 ends after 2 ms - c, and op 1, with c left, alone again,
    # 2 ms - c after its own start. Together they take exactly the 2 ms of their bytes.
    h = h100().host
    c, t0 = h.graph_node_cost.value, h.graph_launch.value + h.graph_node_cost.value
    d = [("dev0.hbm", 1e6, 1e9)]
    r = sim([{"dur": 0.0, "demands": d, "stream": 0, "reads": []},
             {"dur": 0.0, "demands": d, "stream": 1, "reads": []}], launch="graph")
    df = r.to_pandas()
    assert df["start_s"].tolist() == pytest.approx([t0, t0 + c], rel=1e-9)
    assert df["duration_s"].tolist() == pytest.approx([2e-3 - c, 2e-3 - c], rel=1e-9)
    assert r.step_time_s == pytest.approx(t0 + 2e-3, rel=1e-9)
    # the main stream: waiting to be issued, then memory-bound, then op 1 on the other stream
    assert r.summary()["time_by_bound"] == pytest.approx({"host": t0, "memory": 2e-3 - c, "other": c}, rel=1e-6)


def test_link_directions_do_not_share():
    r = sim([{"dur": 0.0, "demands": [("host.link.h2d", 1e6, 1e9)], "stream": 0, "reads": []},
             {"dur": 0.0, "demands": [("host.link.d2h", 1e6, 1e9)], "stream": 1, "reads": []}], launch="graph")
    df = r.to_pandas()
    assert df["duration_s"].tolist() == pytest.approx([1e-3, 1e-3], rel=1e-9)


def test_cross_stream_dependency_waits():
    # op 1 on stream 1 reads op 0's output: it cannot start before op 0 ends
    # (issued one dispatch after op 0, long before op 0 ends)
    disp = h100().host.dispatch_overhead.value
    r = sim([{"dur": 1e-3, "stream": 0, "reads": []}, {"dur": 1e-3, "stream": 1, "reads": ["t0"]}])
    df = r.to_pandas()
    assert df["issue_s"].iloc[1] == pytest.approx(2 * disp)
    assert df["start_s"].iloc[1] == pytest.approx(df["end_s"].iloc[0])
    assert df["end_s"].tolist() == pytest.approx([disp + 1e-3, disp + 2e-3], rel=1e-9)


def test_processor_sharing_staggered_and_single_wakeup():
    env = simpy.Environment()
    bw = SharedBandwidth(env, ["r"])
    ends = {}

    def job(key, delay, work):
        yield env.timeout(delay)
        job = yield bw.start([0], [work], work, 0.0)
        if not bw.finish(job):
            yield bw.wait(job)
        ends[key] = env.now

    env.process(job(0, 0.0, 2.0))
    env.process(job(1, 1.0, 2.0))
    env.run()
    # job 0 alone for 1 s (1 left), then both at half rate: job 0 ends at 3, job 1 has
    # 1 left at 3 and ends at 4 alone
    assert ends[0] == pytest.approx(3.0)
    assert ends[1] == pytest.approx(4.0)


def test_a_job_ends_at_its_floor_or_its_last_flow_plus_tail():
    env = simpy.Environment()
    bw = SharedBandwidth(env, ["a", "b"])
    ends = {}

    def job(key, delay, res, work, floor, tail):
        yield env.timeout(delay)
        job = yield bw.start(res, work, floor, tail)
        if not bw.finish(job):
            yield bw.wait(job)
        ends[key] = env.now

    env.process(job(0, 0.0, [0, 1], [0.8, 0.5], 1.2, 0.5))
    env.process(job(1, 0.0, [1], [0.5], 0.5, 0.0))
    env.process(job(2, 2.0, [0], [0.3], 1.0, 0.2))
    env.run()
    # jobs 0 and 1 share b at half rate, so both b flows drain at 1.0 (job 0's flow on a,
    # alone, at 0.8): job 0 ends at max(floor 1.2, 1.0 + tail 0.5) = 1.5, and job 1,
    # 0.5 alone, is stretched to 1.0
    assert ends[0] == pytest.approx(1.5)
    assert ends[1] == pytest.approx(1.0)
    # job 2 runs alone from 2.0: its floor (1.0) outlasts its flow and tail (0.5)
    assert ends[2] == pytest.approx(3.0)


def test_prefetch_overlaps_far_tier_copies_with_compute():
    # four layers of compute-heavy ops whose weights live in host memory: with prefetch the
    # copy for layer L+1 runs while layer L computes, so the step is shorter than paying
    # each copy in line; copies appear on the host link
    g = make_graph([{"dur": 2e-3, "module": f"model.layers.{i}.mlp"} for i in range(4)])
    for op in g.ops:
        op.reads.append(type(op.reads[0] if op.reads else op.writes[0])(f"w:{op.id}", 32_000_000, "weight"))
    sys_ = h100()
    far = simulate(g, sys_, placement=Placement(weights="host"), engine="auto")
    pre = simulate(g, sys_, placement=Placement(weights="host", prefetch=True))
    assert pre.summary()["engine"] == "simpy"
    assert len(pre.copies) == 4
    assert (pre.copies["resource"] == "host.link.h2d").all()
    assert pre.step_time_s < far.step_time_s
    # each op starts only after its copy
    df = pre.to_pandas()
    assert (df["start_s"].to_numpy() >= pre.copies["end_s"].to_numpy() - 1e-12).all()
    # copy of layer 2 starts once layer 1 started (one layer of look-ahead), not at time 0
    assert pre.copies["start_s"].iloc[2] >= df["start_s"].iloc[1] - 1e-12


def test_bad_engine_and_launch_are_user_errors():
    with pytest.raises(SimulationError):
        sim([{"dur": 1e-6}], engine="warp")
    with pytest.raises(SimulationError):
        sim([{"dur": 1e-6}], launch="lazy")
    with pytest.raises(SimulationError):
        sim([{"dur": 1e-6, "stream": 0}, {"dur": 1e-6, "stream": 1}], engine="fast")


def test_tp_beyond_devices_is_refused():
    with pytest.raises(SimulationError, match="exceeds"):
        sim([{"dur": 1e-6}], tp=16)


def test_result_frame_and_summary_values_by_hand():
    # two ops of 1 and 2 us behind 12 us of eager dispatch each: op i is issued and starts
    # at (i + 1) x dispatch; each writes 64 B and op 1 reads op 0's 64 B; one bf16 FLOP each
    sys_ = h100()
    disp = sys_.host.dispatch_overhead.value
    r = sim([{"dur": 1e-6}, {"dur": 2e-6}])
    df = r.to_pandas()
    assert df["start_s"].tolist() == pytest.approx([disp, 2 * disp], rel=1e-9)
    assert df["end_s"].tolist() == pytest.approx([disp + 1e-6, 2 * disp + 2e-6], rel=1e-9)
    s = r.summary()
    step = 2 * disp + 2e-6
    assert {k: s[k] for k in ("model", "hardware", "phase", "batch", "context", "dtype", "launch", "tp")} == {
        "model": "toy", "hardware": "h100-sxm", "phase": "decode", "batch": 1, "context": 8, "dtype": "bf16",
        "launch": "eager", "tp": 1}
    assert s["step_time_s"] == pytest.approx(step, rel=1e-9)
    assert s["host_time_s"] == pytest.approx(2 * disp, rel=1e-9)
    assert s["device_busy_s"] == pytest.approx(3e-6, rel=1e-9)
    assert (s["kernels"], s["flops"], s["bytes"]) == (2, 2.0, 192.0)
    assert s["memory_floor_s"] == pytest.approx(192 / sys_.device.main_memory.bandwidth.value, rel=1e-9)
    assert s["compute_floor_s"] == pytest.approx(2 / sys_.device.matrix["bf16"].peak.value, rel=1e-9)
    assert s["tokens_per_s"] == pytest.approx(1 / step, rel=1e-9)
    assert s["bottleneck"] == "host/launch"
    assert s["time_by_bound"] == pytest.approx({"compute": 3e-6, "host": step - 3e-6}, rel=1e-9)


def test_prefetch_writes_new_kv_back_over_the_other_direction():
    # a KV-cache write into a far tier lands in device memory and is copied back d2h after
    # the op; the step cannot end before the bytes have landed
    g = make_graph([{"dur": 1e-5, "module": "model.layers.0.attn"}])
    op = g.ops[0]
    op.writes.append(type(op.writes[0])("kv:0", 8_000_000, "kv_cache"))
    op.reads.append(type(op.writes[0])("kv:0", 64_000_000, "kv_cache"))
    r = simulate(g, h100(), placement=Placement(kv_cache="host", prefetch=True))
    kinds = dict(zip(r.copies["kind"], r.copies["resource"], strict=True))
    assert kinds == {"prefetch": "host.link.h2d", "writeback": "host.link.d2h"}
    wb = r.copies[r.copies["kind"] == "writeback"].iloc[0]
    assert wb["start_s"] >= r.to_pandas()["end_s"].iloc[0] - 1e-15
    assert r.step_time_s == pytest.approx(wb["end_s"])


@pytest.mark.parametrize("launch,pays", [("eager", True), ("graph", False), ("device", False)])
def test_library_kernels_pay_their_call_path_only_when_launched_eagerly(launch, pays):
    # a GEMM among elementwise ops: eager launch adds host.library_call to its dispatch;
    # graph replay skips the whole host path, library call included
    h = h100().host
    ops = [{"dur": 1e-6, "kind": "elementwise"}, {"dur": 1e-6, "kind": "matmul"}, {"dur": 1e-6}]
    plain = sim([{"dur": 1e-6}] * 3, launch=launch).step_time_s
    with_gemm = sim(ops, launch=launch).step_time_s
    extra = h.library_call.value if pays else 0.0
    assert h.library_call.value > 0
    assert with_gemm == pytest.approx(plain + extra, rel=1e-9)
