"""Scale-out (issue 16): pipeline schedule and bubble, stage split and memory, expert
parallelism's all-to-all, hierarchical collectives across nodes, the CLI report."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models import physics
from hw_models.catalog import load
from roofsim.cli import main
from simulator.layout import with_nodes
from simulator.pipeline import balance, bubble_fraction, resident_weight_bytes, schedule, stage_memory
from simulator.scaleout import simulate_scaled
from workloads import build
from workloads.expert_parallel import dispatch_bytes, expert_shard
from workloads.rules import expected_unique_experts
from workloads.tensor_parallel import shard


@settings(max_examples=40, deadline=None)
@given(S=st.integers(1, 8), M=st.integers(1, 16), t=st.floats(1e-6, 1.0))
def test_bubble_of_equal_stages_is_s_minus_1_over_m_plus_s_minus_1(S, M, t):
    start, end = schedule([t] * S, [0.0] * (S - 1), M)
    step = end[-1, -1]
    assert step == pytest.approx((M + S - 1) * t, rel=1e-9)
    idle = [step - M * t for _ in range(S)]
    assert sum(idle) / (S * step) == pytest.approx(bubble_fraction(S, M), rel=1e-9, abs=1e-12)
    assert bubble_fraction(S, M) == pytest.approx((S - 1) / (M + S - 1))


def test_sends_and_a_slow_stage_stretch_the_schedule():
    # stage 1 is twice as slow: micro-batches queue in front of it; each send adds to the first arrival
    start, end = schedule([1.0, 2.0], [0.5], 3)
    assert list(start[1]) == [1.5, 3.5, 5.5]
    assert end[-1, -1] == pytest.approx(7.5)


def test_balance_minimises_the_slowest_stage():
    times = [1.0, 1.0, 1.0, 1.0, 4.0, 1.0]
    starts = balance(times, 2)
    # [1,1,1,1] | [4,1] -> 4 vs 5; [1,1,1,1,4] | [1] -> 8: the first is best
    assert starts == [0, 4]
    assert balance([1.0] * 8, 4) == [0, 2, 4, 6]
    # a heavy head (embedding) pushes layers to the later stage
    assert balance([1.0] * 4, 2, head=2.0) == [0, 1]


def test_pipeline_of_llama_balanced_and_bubble_in_time_by_bound():
    g = build("llama-3.1-8b", "decode", batch=4, context=512)
    res = simulate_scaled(g, "h100-sxm", tp=2, pp=2, microbatches=4, launch="graph")
    s = res.summary()
    assert [st_["layers"] for st_ in s["stages"]][0][0] == 0 and s["stages"][-1]["layers"][1] == 32
    t0, t1 = res.stage_s
    layer = max(t0, t1) / 16
    assert abs(t0 - t1) < layer  # balanced to within one layer's time
    assert sum(s["time_by_bound"].values()) == pytest.approx(s["step_time_s"], rel=1e-9)
    bub = s["time_by_bound"]["pipeline_bubble"]
    # the stages are nearly equal and the send over NVLink is microseconds: close to (S-1)/(M+S-1)
    assert bub / s["step_time_s"] == pytest.approx(bubble_fraction(2, 4), abs=0.03)
    assert s["stages"][0]["link"] == "intra-node"
    assert s["steady_step_s"] == pytest.approx(4 * max(t0, t1))


def test_per_stage_memory_sums_to_the_whole():
    g = build("llama-3.1-8b", "decode", batch=2, context=1024)
    res = simulate_scaled(g, "h100-sxm", tp=1, pp=4, microbatches=2)
    whole = stage_memory([_whole(g)], g, 1, 32)[0]
    w = sum(m["weights"] for m in res.memory)
    kv = sum(m["kv_cache"] for m in res.memory)
    assert w == pytest.approx(whole["weights"], rel=1e-9)
    assert kv == pytest.approx(whole["kv_cache"], rel=1e-9)
    # and the whole is the model: 8.03B parameters in bf16, 32 layers x 8 KV heads x 128 x 1025 tokens x 2
    assert w == pytest.approx(g.meta["config"]["params"] * 2, rel=0.01)
    assert kv == pytest.approx(2 * 32 * 8 * 128 * 1025 * 2 * 2, rel=1e-9)
    # the stages differ: the first holds the embedding, the last the head
    assert res.memory[0]["weights"] > res.memory[1]["weights"] < res.memory[3]["weights"]


def _whole(g):
    g.meta["layers"] = (0, g.meta["config"]["num_layers"])
    return g


def test_ep_all_to_all_bytes_by_hand():
    # mixtral-8x7b: 8 experts, top 2, hidden 4096, bf16; one EP rank holds 4 sequences (decode: 4 tokens)
    g = build("mixtral-8x7b", "decode", batch=4, context=128)
    moe = [op for op in g.ops if op.kind == "moe"][0]
    ep = 4
    out = expert_shard(g, ep, imbalance=1.5)
    a2a = [op for op in out.ops if op.kind == "collective"]
    assert len(a2a) == 2 * 32
    # dispatch: every token to its 2 experts' ranks, 4 tokens x 2 x 4096 x 2 bytes; the combine returns them
    assert dispatch_bytes(moe) == 4 * 2 * 4096 * 2 == 65536
    assert {op.attrs["bytes"] for op in a2a} == {65536}
    assert [op.attrs["ep_phase"] for op in a2a[:2]] == ["dispatch", "combine"]
    # on the wire: (ep-1)/ep of it, as the ring all-to-all formula says
    traffic, _ = physics.collective_terms("all_to_all", ep, "ring")
    assert traffic * 65536 == 3 / 4 * 65536
    m2 = [op for op in out.ops if op.kind == "moe"][0]
    # the rank's 2 experts, hit by 16 tokens of the group
    local = 2 * (1 - (1 - 2 / 8) ** 16)
    assert m2.attrs["expected_experts"] == pytest.approx(local)
    w = sum(a.bytes for a in moe.reads if "experts" in a.tensor)
    w2 = sum(a.bytes for a in m2.reads if "experts" in a.tensor)
    assert w2 == pytest.approx(w * local / expected_unique_experts(8, 2, 4), rel=1e-6)
    router = moe.attrs["router_flops"]
    assert m2.total_flops == pytest.approx(router + 1.5 * (moe.total_flops - router))


def test_ep_across_nodes_costs_both_levels():
    g = build("mixtral-8x7b", "decode", batch=8, context=128)
    system = with_nodes(load("h100-sxm"), 2)
    res = simulate_scaled(g, system, tp=2, ep=8, launch="graph")
    links = res.summary()["links"]
    assert links["inter-node"]["bytes"] > 0 and links["intra-node"]["bytes"] > 0
    # a dispatch over 16 ranks in 2 nodes: half of a rank's bytes leave on its NIC
    ops = res.stages[0].ops
    a2a = ops[ops["name"] == "c10d::all_to_all"].iloc[0]
    nbytes = 8 * 2 * 4096 * 2
    net, ic = system.network, system.interconnect
    r = physics.hierarchical_collective("all_to_all", nbytes, 8, 2,
                                        (ic.bandwidth.value * ic.efficiency(nbytes), ic.latency.value),
                                        (net.bandwidth.value * net.efficiency(nbytes / 4), net.latency.value))
    assert r["inter_bytes"] == pytest.approx(nbytes / 2)
    call = max(net.collective_latency.value, ic.collective_latency.value)
    assert a2a["time_s"] == pytest.approx(call + r["time_s"], rel=1e-9)


def test_the_issue_command_shows_bubble_and_both_link_levels(capsys, tmp_path):
    trace = tmp_path / "t.json"
    rc = main(["simulate", "llama-3.1-405b", "--hardware", "h100-sxm", "--nodes", "2", "--tp", "8", "--pp", "2",
               "--trace-out", str(trace)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "pipeline_bubble" in out and "intra-node" in out and "inter-node" in out
    assert "tp 8 x ep 1 x pp 2 = 16 devices on 2 node(s)" in out
    doc = json.loads(trace.read_text())
    procs = {e["pid"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert procs == {0, 1}  # a track per device that differs: one per stage
    assert any(e["cat"] == "bubble" for e in doc["traceEvents"] if e["ph"] == "X")
    rc = main(["simulate", "llama-3.1-405b", "--hardware", "h100-sxm", "--nodes", "2", "--tp", "8", "--pp", "2",
               "--batch", "8", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["pp"] == 2 and doc["microbatches"] == 2 and doc["nodes"] == 2
    assert doc["stages"][0]["link"] == "inter-node"
    assert sum(doc["time_by_bound"].values()) == pytest.approx(doc["step_time_s"], rel=1e-9)


def test_tp_only_matches_plain_simulate_on_one_node():
    from simulator import simulate

    g = build("llama-3.1-8b", "decode", batch=2, context=256)
    a = simulate(g, "h100-sxm", tp=4, launch="graph")
    b = simulate_scaled(g, "h100-sxm", tp=4, launch="graph")
    assert b.step_time_s == pytest.approx(a.step_time_s, rel=1e-12)
    assert b.time_by_bound == pytest.approx(a.time_by_bound, rel=1e-12)


def test_resident_weights_of_a_moe_count_every_held_expert():
    g = build("mixtral-8x7b", "decode", batch=1, context=64)
    w = resident_weight_bytes(g)
    assert w == pytest.approx(g.meta["config"]["params"] * 2, rel=0.01)
    w2 = resident_weight_bytes(shard(g, 2))
    assert w2 < w


def test_a_cross_node_collective_without_attrs_is_priced_as_its_name_and_buffers_say():
    # a traced collective that states nothing: the single-node cost model reads its kind from
    # its name and its message from its buffers; the cross-node pricing reads the same
    from hw_models import physics
    from simulator.costmodel import op_cost
    from simulator.layout import Layout, collective_cost
    from workloads.op import Access, Op

    system = with_nodes(load("h100-sxm"), 2)
    nbytes = 1 << 20
    op = Op(0, "c10d::all_gather", "collective", "bf16", reads=[Access("x", nbytes, "activation")],
            writes=[Access("y", nbytes, "activation")], attrs={"n": 16})
    lay = Layout(tp=16, nodes=2, per_node=system.num_devices)
    c = collective_cost(op, system, lay, op_cost(op, system))
    ic, net = system.interconnect, system.network
    rate = lambda link, b: link.bandwidth.value * link.efficiency(max(b, 1.0))  # noqa: E731
    want = physics.hierarchical_collective("all_gather", nbytes, 8, 2, (rate(ic, nbytes), ic.latency.value),
                                           (rate(net, nbytes / 8), net.latency.value))
    assert c.bytes == nbytes
    assert op.attrs["levels"]["network"][0] == pytest.approx(want["inter_bytes"])
