"""simulator.costmodel and simulator.placement on hand-made ops and graphs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_models import physics
from hw_models.catalog import load
from hw_models.spec import TierSpec
from simulator.cache import residency, serving_level
from simulator.costmodel import graph_costs, op_cost
from simulator.params import ParamError, Params
from simulator.placement import Placement, PlacementError
from workloads.graph import WorkloadGraph
from workloads.op import MATRIX_KINDS, Access, Op

H = 4096


@pytest.fixture(scope="module")
def h100():
    return load("h100-sxm")


def with_pim(system):
    """``system`` plus an HBM-PIM tier named ``pim`` (numbers made up for the test)."""
    s = system.model_copy(deep=True)
    src = "test"
    pim = TierSpec.model_validate({
        "name": "pim", "kind": "pim",
        "capacity": {"value": "80 GB", "source": src},
        "bandwidth": {"value": "3 TB/s", "source": src},
        "latency": {"value": "500 ns", "source": src},
        "link": {"name": "pim-link", "kind": "internal", "bandwidth": {"value": "3 TB/s", "source": src},
                 "latency": {"value": "1 us", "source": src}, "efficiency": {"value": 0.9, "source": src}},
        "pim": {"internal_bandwidth": {"value": "27 TB/s", "source": src},
                "peak": {"value": "27 TFLOP/s", "source": src},
                "mode_switch": {"value": "1 us", "source": src}, "max_rows": {"value": 8, "source": src}},
    })
    s.tiers = [*s.tiers, pim]
    return s


def mm(i=0, m=1, n=H, k=H, x="x", y="y", w="w:q", kind="matmul", dtype="bf16"):
    return Op(id=i, name="aten::mm", kind=kind, dtype=dtype, flops={dtype: 2.0 * m * n * k},
              reads=[Access(x, 2 * m * k, "activation"), Access(w, 2 * k * n, "weight")],
              writes=[Access(y, 2 * m * n, "activation")], attrs={"m": m, "n": n, "k": k, "batch": 1})


def ew(i, x, y, nbytes=2 * H, kind="elementwise"):
    return Op(id=i, name="aten::add", kind=kind, dtype="bf16", flops={"bf16": nbytes / 2},
              reads=[Access(x, nbytes, "activation")], writes=[Access(y, nbytes, "activation")])


def scale_bandwidth(system, k, level=None):
    s = system.model_copy(deep=True)
    for lv in s.device.memory:
        if level is None or lv.name == level:
            lv.bandwidth = {"value": f"{lv.bandwidth.value * k} B/s", "source": "scaled"}
    return s


def scale_compute(system, k):
    s = system.model_copy(deep=True)
    for units in (s.device.matrix, s.device.vector):
        for u in units.values():
            u.peak = {"value": f"{u.peak.value * k} FLOP/s", "source": "scaled"}
    return s


# -- random ops for the properties ---------------------------------------------------------

KINDS = ["matmul", "gemv", "attention", "elementwise", "norm", "softmax", "reduction", "gather", "copy", "scatter"]


@st.composite
def ops(draw):
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(st.sampled_from(["bf16", "fp32", "fp8", "int4"]))
    m = draw(st.integers(1, 8192))
    n = draw(st.integers(1, 16384))
    k = draw(st.integers(1, 16384))
    flops = 2.0 * m * n * k if kind in ("matmul", "gemv") else draw(st.floats(0, 1e11))
    reads = [Access("a", draw(st.integers(0, 10**8)), "activation")]
    if draw(st.booleans()):
        reads.append(Access("w:p", draw(st.integers(0, 10**9)), "weight"))
    if draw(st.booleans()):
        reads.append(Access("kv:0", draw(st.integers(0, 10**9)), "kv_cache"))
    writes = [Access("o", draw(st.integers(0, 10**8)), "activation")]
    updates = draw(st.integers(0, 10**7)) if kind == "scatter" else 0
    return Op(id=0, name=f"aten::{kind}", kind=kind, dtype=dtype, flops={dtype: flops}, reads=reads,
              writes=writes, attrs={"m": m, "n": n, "k": k, "batch": 1}, updates=updates,
              distinct_targets=draw(st.integers(1, 10**6)) if updates else 0,
              unknown=draw(st.booleans()))


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(ops(), st.sampled_from(["device", "host", "pim"]))
@PROPS
def test_time_never_below_roofline(h100, op, where):
    s = with_pim(h100)
    c = op_cost(op, s, Placement(weights=where, kv_cache=where if where != "pim" else "device"))
    assert c.time_s >= c.roofline_s * (1 - 1e-12)
    assert c.time_s > 0
    p = s.device.overlap.value if op.kind in MATRIX_KINDS else 64.0  # streaming ops: the plain max
    body = max(float(physics.overlap(c.compute_s, c.memory_s, p)), c.atomic_s, c.pim_s)
    assert c.time_s == pytest.approx(c.fixed_s + body, rel=1e-12)


@given(ops(), st.floats(1.0, 100.0), st.sampled_from([None, "l1", "l2", "hbm"]))
@PROPS
def test_more_bandwidth_never_slower(h100, op, k, level):
    assert op_cost(op, scale_bandwidth(h100, k, level)).time_s <= op_cost(op, h100).time_s * (1 + 1e-12)


@given(ops(), st.floats(1.0, 100.0))
@PROPS
def test_more_compute_never_slower(h100, op, k):
    assert op_cost(op, scale_compute(h100, k)).time_s <= op_cost(op, h100).time_s * (1 + 1e-12)


@given(ops(), st.sampled_from(["weights", "kv_cache", "activations"]))
@PROPS
def test_far_tier_never_faster_than_device(h100, op, role):
    far = op_cost(op, h100, Placement(**{role: "host"}))
    # the two sides sum their terms in different orders: equal times may differ in the
    # tenth digit (hypothesis found 1.1414560661e-4 against 1.1414560663e-4 s)
    assert far.time_s >= op_cost(op, h100).time_s * (1 - 1e-9)


# -- rules ---------------------------------------------------------------------------------


def test_view_costs_nothing(h100):
    v = Op(id=3, name="aten::view", kind="view", dtype="bf16", launches=0,
           reads=[Access("x", 100, "activation")], writes=[Access("y", 100, "activation")])
    c = op_cost(v, h100)
    assert (c.time_s, c.roofline_s, c.launches, c.bound, c.demands) == (0.0, 0.0, 0, "none", [])


def test_decode_gemv_is_memory_bound_on_hbm_in_a_cold_graph(h100):
    g = WorkloadGraph()
    big = mm(0, m=1, n=8 * H, k=8 * H, x="x0", y="x", w="w:big")  # 512 MiB of weights: the step is cold
    g.extend([big, mm(1, m=1)])
    c = graph_costs(g, h100)[1]
    assert c.bound == "memory:hbm"
    hbm = c.demand("dev0.hbm")
    assert hbm.bytes >= 2 * H * H
    body = physics.overlap(c.compute_s, hbm.bytes / hbm.bandwidth, h100.device.overlap.value)
    assert c.time_s == pytest.approx(c.fixed_s + body)
    assert c.compute_s < 0.5 * hbm.time_s  # a GEMV's math mostly hides under its weight stream
    assert c.fixed_s == pytest.approx(h100.device.kernel_latency.value)


def test_big_gemm_is_compute_bound_near_measured_rate(h100):
    n = 8192
    c = op_cost(mm(m=n, n=n, k=n), h100)
    assert c.bound == "compute"
    # bf16 8192^3 measured at about 798 TFLOP/s on one H100 SXM (docs/sources.md)
    assert 2 * n**3 / c.time_s == pytest.approx(798e12, rel=0.15)


def _copy(nbytes):
    return Op(id=0, name="aten::copy_", kind="copy", dtype="bf16", reads=[Access("a", nbytes, "activation")],
              writes=[Access("b", nbytes, "activation")])


@pytest.mark.parametrize("hw, op, work, measured, rel", [
    # docs/sources.md, device table: single-GPU runs of a 1 GiB device-to-device copy
    # (counting read and write) and of a bf16 8192^3 matmul; H200's matmul spans 769-798
    ("h100-sxm", _copy(1 << 30), 2 << 30, 3.0e12, 0.03),
    ("h200", _copy(1 << 30), 2 << 30, 4.3e12, 0.03),
    ("h100-sxm", mm(m=8192, n=8192, k=8192), 2 * 8192**3, 798e12, 0.05),
    ("h200", mm(m=8192, n=8192, k=8192), 2 * 8192**3, 783.5e12, 0.05),
])
def test_the_cost_model_reproduces_measured_plateaus(hw, op, work, measured, rel):
    # the whole op through the model (efficiency curves at the op's size, tiles, overlap,
    # kernel latency), not the catalog's peak x efficiency
    assert work / op_cost(op, load(hw)).time_s == pytest.approx(measured, rel=rel)


def test_wave_quantisation_visible_in_op_cost(h100):
    one_tile = h100.model_copy(deep=True)
    one_tile.device.tiles.shapes = [(128, 128)]
    cu = int(h100.device.compute_units.value)
    one = op_cost(mm(m=128, n=128 * cu, k=8192), one_tile)
    two = op_cost(mm(m=128, n=128 * (cu + 1), k=8192), one_tile)
    assert two.compute_s / one.compute_s == pytest.approx(2.0, rel=0.05)
    # with a choice of tiles the library dodges most of the second wave
    assert op_cost(mm(m=128, n=128 * (cu + 1), k=8192), h100).compute_s < 1.5 * one.compute_s


def test_weights_in_far_tier_cross_its_link(h100):
    c = op_cost(mm(), h100, Placement(weights="host"))
    assert c.bound == "link:host"
    assert c.demand("host.link.h2d").bytes == 2 * H * H
    assert c.demand("host.mem").bytes == 2 * H * H
    assert c.demand("dev0.hbm") is None or c.demand("dev0.hbm").bytes < 2 * H * H
    link = h100.tier("host").link
    assert c.fixed_s >= link.latency.value
    assert c.time_s >= link.latency.value + 2 * H * H / float(Params(h100).rate("link:host", 2 * H * H))


def test_kv_cache_write_to_far_tier_uses_d2h(h100):
    op = Op(id=0, name="aten::index_copy_", kind="copy", dtype="bf16",
            reads=[Access("k", 4096, "activation")], writes=[Access("kv:0", 4096, "kv_cache")])
    c = op_cost(op, h100, Placement(kv_cache="host"))
    assert c.demand("host.link.d2h").bytes == 4096
    assert c.demand("host.link.h2d") is None


def test_prefetch_reads_far_weights_from_device_memory(h100):
    c = op_cost(mm(), h100, Placement(weights="host", prefetch=True))
    assert c.demand("host.link.h2d") is None
    assert c.time_s < op_cost(mm(), h100, Placement(weights="host")).time_s


def test_gemv_with_pim_weights_runs_in_memory(h100):
    s = with_pim(h100)
    c = op_cost(mm(m=1), s, Placement(weights="pim"))
    assert c.pim_s > 0 and c.compute_s == 0 and c.unit == "pim"
    assert c.demand("pim.pim").bytes == 2 * H * H
    link = c.demand("pim.link.h2d")
    assert link is None or link.bytes < 2 * H * H  # only the small result comes back
    pim = s.tier("pim").pim
    assert c.pim_s == pytest.approx(float(physics.pim_time(1, 2 * H * H, 2.0 * H * H, pim.internal_bandwidth.value,
                                                           pim.peak.value, pim.mode_switch.value)))
    assert c.time_s < op_cost(mm(m=1), s, Placement(weights="host")).time_s


def test_pim_pays_a_pass_per_input_row(h100):
    s = with_pim(h100)
    one, two = (op_cost(mm(m=m), s, Placement(weights="pim")) for m in (1, 2))
    switch = s.tier("pim").pim.mode_switch.value
    assert two.pim_s - switch == pytest.approx(2 * (one.pim_s - switch))
    # beyond max_rows the op is a GEMM and leaves the banks
    assert op_cost(mm(m=9), s, Placement(weights="pim")).pim_s == 0


def test_gemm_with_pim_weights_crosses_the_link(h100):
    s = with_pim(h100)
    c = op_cost(mm(m=512), s, Placement(weights="pim"))
    assert c.pim_s == 0
    assert c.demand("pim.link.h2d").bytes >= 2 * H * H


def test_scatter_pays_atomics_and_collisions_slow_it(h100):
    def sc(targets):
        return Op(id=0, name="aten::index_add_", kind="scatter", dtype="fp32", flops={"fp32": 1e6},
                  reads=[Access("src", 4_000_000, "activation")], writes=[Access("dst", 4_000, "activation")],
                  updates=1_000_000, distinct_targets=targets)
    few, many = op_cost(sc(10), h100), op_cost(sc(100_000), h100)
    assert few.bound == "atomic"
    assert few.atomic_s > many.atomic_s
    a = h100.device.atomics
    assert few.atomic_s == pytest.approx(float(physics.atomic_time(1e6, 1e5, a.update_rate.value,
                                                                   a.same_address_rate.value)))


def test_unknown_op_gets_time_from_bytes_and_is_flagged(h100):
    op = Op(id=0, name="aten::weird", kind="unknown", dtype="bf16", unknown=True,
            reads=[Access("w:z", 10**8, "weight")], writes=[Access("o", 10**6, "activation")])
    c = op_cost(op, h100)
    assert c.unknown and c.time_s > 0 and c.bound.startswith("memory:")


def test_unknown_dtype_falls_back_to_fp32_vector(h100):
    op = Op(id=0, name="aten::mul", kind="elementwise", dtype="int4", flops={"int4": 1e12},
            reads=[Access("a", 10, "activation")], writes=[Access("b", 10, "activation")])
    c = op_cost(op, h100)
    assert c.unit == "vector.fp32"
    assert c.roofline_s == pytest.approx(1e12 / h100.device.vector["fp32"].peak.value)


def test_collective_on_interconnect_grows_with_ranks(h100):
    def ar(n):
        return Op(id=0, name="c10d::all_reduce", kind="collective", dtype="bf16",
                  reads=[Access("x", 2 * 10**8, "activation")], writes=[Access("y", 2 * 10**8, "activation")],
                  attrs={"n": n})
    times = [op_cost(ar(n), h100).time_s for n in (1, 2, 4, 8)]
    assert times == sorted(times) and times[0] < times[-1]
    c = op_cost(ar(8), h100)
    d = c.demand("interconnect.0")
    assert d.bytes == pytest.approx(2 * 7 / 8 * 2e8)  # 200 MB: the ring wins
    p = Params(h100)

    def coll(nbytes, algos):
        return physics.collective_time("all_reduce", nbytes, 8, float(p.rate("link:interconnect", nbytes)),
                                       p.scalar("latency:link:interconnect"), algos)[0]

    assert c.time_s >= coll(2e8, ("ring", "tree"))
    small = Op(id=0, name="c10d::all_reduce", kind="collective", dtype="bf16",
               reads=[Access("x", 16384, "activation")], writes=[Access("y", 16384, "activation")],
               attrs={"collective": "all_reduce", "n": 8, "bytes": 16384})
    cs = op_cost(small, h100)
    fixed = h100.device.kernel_latency.value + h100.interconnect.collective_latency.value
    assert cs.time_s == pytest.approx(coll(16384, ("ring", "tree")) + fixed, rel=0.05)
    assert cs.time_s < coll(16384, ("ring",)) + fixed  # the tree wins a small message


def test_collectives_pay_launch_skew_eagerly_and_serving_uses_one_shot(h100):
    sys_ = h100.model_copy(deep=True)
    sys_.interconnect.eager_collective_latency = sys_.interconnect.collective_latency.model_copy(
        update={"value": 40e-6})

    def ar(**attrs):
        return Op(id=0, name="c10d::all_reduce", kind="collective", dtype="bf16",
                  reads=[Access("x", 16384, "activation")], writes=[Access("y", 16384, "activation")],
                  attrs={"collective": "all_reduce", "n": 8, "bytes": 16384, **attrs})

    eager, graph = op_cost(ar(launch="eager"), sys_), op_cost(ar(launch="graph"), sys_)
    assert eager.time_s - graph.time_s == pytest.approx(40e-6 - sys_.interconnect.collective_latency.value)
    one_shot = op_cost(ar(launch="graph", custom=True), sys_)
    lat = sys_.device.kernel_latency.value + sys_.interconnect.custom_allreduce_latency.value
    assert one_shot.time_s == pytest.approx(lat + 7 * 16384 / float(Params(sys_).rate("link:interconnect", 16384)))
    assert one_shot.time_s < graph.time_s
    # a big message goes back to the ring: one-shot moves (n-1) x the message
    big = op_cost(ar(launch="graph", custom=True, bytes=10**9), sys_)
    assert big.time_s == pytest.approx(op_cost(ar(launch="graph", bytes=10**9), sys_).time_s)


# -- the cache rule ------------------------------------------------------------------------


def test_serving_level_rule():
    levels = [(0, 1e3), (1, 1e6)]  # (index, capacity), nearest first
    assert serving_level(levels, 2, 500, True) == 0
    assert serving_level(levels, 2, 5e5, True) == 1
    assert serving_level(levels, 2, 5e6, True) == 2  # does not fit the LLC
    assert serving_level(levels, 2, 500, False) == 2  # not fresh
    # hierarchy order, not capacity: per-core L2s that together outgrow the L3 serve first
    assert serving_level([(1, 112e6), (2, 100e6)], 3, 50e6, True) == 1


def test_cpu_cache_levels_follow_the_hierarchy():
    from simulator.cache import cache_levels

    xeon = load("xeon-8480").device
    assert [i for i, _ in cache_levels(xeon)] == list(range(len(xeon.memory) - 1))
    gpu = load("h100-sxm").device
    assert [gpu.memory[i].name for i, _ in cache_levels(gpu)] == ["l2"]  # SM-private L1 does not persist


def test_fresh_activation_served_from_l2_but_not_after_eviction(h100):
    g = WorkloadGraph()
    g.extend([
        ew(0, "a", "b"),
        ew(1, "b", "c"),  # reads b just produced -> L2 (GPU L1 does not persist across kernels)
        mm(2, m=1, n=8 * H, k=8 * H, x="c", y="d", w="w:big"),  # streams 512 MiB through
        ew(3, "b", "e"),  # b was evicted
    ])
    costs = graph_costs(g, h100)
    assert costs[1].demand("dev0.l2").bytes == 2 * 2 * H
    assert costs[1].demand("dev0.l1") is None
    assert costs[3].demand("dev0.hbm").bytes >= 2 * H


def test_partial_write_does_not_make_whole_tensor_resident():
    w = Op(id=0, name="aten::index_copy_", kind="copy", dtype="bf16", reads=[Access("k", 10, "activation")],
           writes=[Access("kv:0", 10, "kv_cache")])
    r = Op(id=1, name="sdpa", kind="attention", dtype="bf16", reads=[Access("kv:0", 10**6, "kv_cache")],
           writes=[Access("o", 10, "activation")])
    big = Op(id=2, name="x", kind="copy", dtype="bf16", reads=[Access("z", 10**9, "activation")])
    res = residency([w, r, big], llc_bytes=50e6)
    assert "kv:0" not in res[1]


def test_graph_costs_equals_op_cost_with_residency(h100):
    g = WorkloadGraph()
    for layer in range(3):
        g.extend([ew(4 * layer, f"x{layer}", f"h{layer}"),
                  mm(4 * layer + 1, x=f"h{layer}", y=f"q{layer}", w=f"w:q{layer}"),
                  mm(4 * layer + 2, m=1, n=8 * H, k=8 * H, x=f"q{layer}", y=f"u{layer}", w=f"w:u{layer}"),
                  ew(4 * layer + 3, f"u{layer}", f"x{layer + 1}", nbytes=16 * H)])
    costs = graph_costs(g, h100)
    res = residency(g.ops, 50e6)
    for op, c in zip(g.ops, costs, strict=True):
        ref = op_cost(op, h100, resident=res[op.id])
        assert c.op_id == op.id
        assert (c.time_s, c.bound, c.roofline_s) == (ref.time_s, ref.bound, ref.roofline_s)


# -- placement -----------------------------------------------------------------------------


def test_placement_roles_and_validation(h100):
    p = Placement(weights="host")
    assert p.tier_of("weight") == "host"
    assert p.tier_of("kv_cache") == "device"
    assert p.tier_of("output") == p.tier_of("activation") == "device"
    assert Placement(weights="hbm").validate(h100).weights == "device"
    with pytest.raises(PlacementError) as e:
        Placement(kv_cache="cxl").validate(h100)
    assert e.value.user_facing and "cxl" in str(e.value)
    with pytest.raises(PlacementError):
        op_cost(mm(), h100, Placement(weights="nowhere"))


def test_graph_costs_sees_ops_added_after_a_first_call(h100):
    g = WorkloadGraph()
    g.extend([ew(0, "a", "b"), mm(1, x="b", y="c")])
    assert len(graph_costs(g, h100)) == 2
    g.add(mm(2, m=64, x="c", y="d", w="w:k"))
    again = graph_costs(g, h100)
    assert [c.op_id for c in again] == [0, 1, 2]
    assert again[2].time_s == op_cost(g.ops[2], h100, resident=residency(g.ops, 50e6)[2]).time_s
    # a plain list of ops works too (no caching)
    assert [c.time_s for c in graph_costs(list(g.ops), h100)] == [c.time_s for c in again]


def test_repeated_layers_priced_alike_but_ids_kept(h100):
    g = WorkloadGraph()
    g.extend([mm(i, m=1, n=8 * H, k=8 * H, x=f"x{i}", y=f"x{i + 1}", w=f"w:{i}") for i in range(4)])
    costs = graph_costs(g, h100)
    assert [c.op_id for c in costs] == [0, 1, 2, 3]
    # op 0 reads a cold graph input; ops 1-3 read the activation their predecessor just wrote
    assert len({(c.time_s, c.bound) for c in costs[1:]}) == 1
    assert costs[0].demand("dev0.hbm").bytes == costs[1].demand("dev0.hbm").bytes + 2 * 8 * H


def test_transfer_crosses_one_link_direction(h100):
    def xfer(attrs):
        return Op(id=0, name="copy_to_device", kind="transfer", dtype="bf16",
                  reads=[Access("kv:0", 10**8, "kv_cache")], writes=[Access("kv:0d", 10**8, "kv_cache")], attrs=attrs)
    up = op_cost(xfer({"src": "host", "dst": "device"}), h100)
    assert up.demand("host.link.h2d").bytes == 10**8 and up.demand("host.link.d2h") is None
    assert up.bound == "link:host"
    assert up.time_s >= 10**8 / h100.tier("host").link.bandwidth.value
    down = op_cost(xfer({"tier": "host", "direction": "d2h"}), h100)
    assert down.demand("host.link.d2h").bytes == 10**8
    bare = h100.model_copy(deep=True)
    bare.tiers = []
    local = op_cost(xfer({}), bare)  # no tier to cross: a device-local copy
    assert local.demand("dev0.hbm").bytes == 2 * 10**8
    with pytest.raises(ParamError, match="no tier 'host'"):  # a named tier the system lacks is an error
        op_cost(xfer({"tier": "host"}), bare)


def test_collective_without_an_interconnect_is_an_error_not_a_detour(h100):
    lonely = h100.model_copy(deep=True)
    lonely.interconnect = None
    op = Op(id=0, name="c10d::all_reduce", kind="collective", dtype="bf16",
            reads=[Access("x", 1000, "activation")], writes=[Access("y", 1000, "activation")], attrs={"n": 4})
    with pytest.raises(ParamError, match="no interconnect"):
        op_cost(op, lonely)


def test_collective_of_unknown_kind_is_flagged_not_fatal(h100):
    op = Op(id=0, name="c10d::mystery", kind="collective", dtype="bf16",
            reads=[Access("x", 1000, "activation")], writes=[Access("y", 1000, "activation")], attrs={"n": 4})
    c = op_cost(op, h100)
    assert c.unknown and c.time_s > 0
