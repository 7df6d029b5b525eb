"""hw_models.physics: closed forms and invariants of the small time functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw_models import physics
from hw_models.quantity import EfficiencyCurve

# -- rate curves --------------------------------------------------------------------------


@given(st.floats(min_value=0.0, max_value=1e13, allow_nan=False))
def test_curve_rate_is_the_efficiency_curve_times_its_peak(size):
    curve = EfficiencyCurve(points=[(4096, 0.02), (1 << 20, 0.3), (1 << 28, 0.9)], source="t")
    xs = np.log10([p[0] for p in curve.points])
    rates = 2e12 * np.array([p[1] for p in curve.points])
    assert physics.curve_rate(xs, rates, size) == pytest.approx(2e12 * curve(size), rel=1e-9)


def test_one_knot_curve_is_flat():
    assert physics.curve_rate(np.array([3.0]), np.array([5.0]), 1e9) == 5.0
    assert list(physics.curve_rate(np.array([3.0]), np.array([5.0]), np.array([1.0, 1e12]))) == [5.0, 5.0]


# -- matrix tiles ---------------------------------------------------------------------------


def test_one_extra_tile_costs_a_second_wave():
    cu, k = 132, 4096
    one = physics.gemm_tiles(128, 128 * cu, k, 1, cu, [(128, 128)], False, 2)[0][0]
    two = physics.gemm_tiles(128, 128 * (cu + 1), k, 1, cu, [(128, 128)], False, 2)[0][0]
    assert two / one == pytest.approx(2.0)


def test_a_skinny_gemm_pads_its_rows_to_the_tile():
    # m = 1 in a 128-row tile: the padded work is 128x the useful FLOPs (one wave, all units busy)
    cu, n, k = 132, 128 * 132, 1024
    work, operand = physics.gemm_tiles(1, n, k, 1, cu, [(128, 128)], False, 2)[0]
    assert work == pytest.approx(2 * 128 * n * k)
    assert operand == pytest.approx(cu * (128 + 128) * k * 2)
    small = physics.gemm_tiles(1, n, k, 1, cu, [(16, 128)], False, 2)[0][0]
    assert small == pytest.approx(work / 8)


def test_split_k_fills_the_units_when_tiles_are_few():
    # 12 tiles on 132 units: without split-K one wave (120 units idle), with it 12/132 of a wave
    without = physics.gemm_tiles(128, 128 * 12, 4096, 1, 132, [(128, 128)], False, 2)[0][0]
    with_sk = physics.gemm_tiles(128, 128 * 12, 4096, 1, 132, [(128, 128)], True, 2)[0][0]
    assert with_sk == pytest.approx(2 * 128 * 128 * 12 * 4096)
    assert without / with_sk == pytest.approx(132 / 12)


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 64), st.integers(1, 4), st.integers(1, 200),
       st.booleans())
def test_padded_work_is_never_below_the_useful_flops(m, n, k, batch, cu, split_k):
    for work, operand in physics.gemm_tiles(m, n, k, batch, cu, [(16, 128), (128, 128), (256, 128)], split_k, 2):
        assert work >= 2.0 * m * n * k * batch * (1 - 1e-12)
        assert operand > 0


def test_tile_time_is_the_slower_of_math_and_operand_streaming():
    assert physics.tile_time(1e9, 1e12, 1e6, 1e12) == pytest.approx(1e-3)
    assert physics.tile_time(1e9, 1e12, 1e10, 1e12) == pytest.approx(1e-2)
    assert physics.tile_time(1e9, 1e12, 1e10, None) == pytest.approx(1e-3)


# -- overlap ---------------------------------------------------------------------------------


@given(st.floats(0, 1e-2), st.floats(0, 1e-2), st.floats(1.0, 100.0))
def test_overlap_is_between_the_max_and_the_sum(c, m, p):
    t = float(physics.overlap(c, m, p))
    assert max(c, m) * (1 - 1e-12) <= t <= (c + m) * (1 + 1e-12) + 1e-300


def test_overlap_limits():
    assert float(physics.overlap(3.0, 4.0, 1.0)) == pytest.approx(7.0)
    assert float(physics.overlap(3.0, 4.0, 2.0)) == pytest.approx(5.0)
    assert float(physics.overlap(3.0, 4.0, 64.0)) == 4.0
    assert float(physics.overlap(0.0, 4.0, 2.0)) == 4.0


@given(st.floats(1e-9, 1e-2), st.floats(1e-9, 1e-2), st.floats(1.0, 50.0), st.floats(1.0, 50.0))
def test_more_overlap_is_never_slower(c, m, p1, p2):
    lo, hi = sorted((p1, p2))
    assert float(physics.overlap(c, m, hi)) <= float(physics.overlap(c, m, lo)) * (1 + 1e-12)


# -- atomics --------------------------------------------------------------------------------


def test_atomic_time_formula():
    assert physics.atomic_time(1e6, physics.updates_per_target(1e6, 1e6), 100e9, 1e9) == pytest.approx(1e6 / 100e9)
    assert physics.atomic_time(1e6, physics.updates_per_target(1e6, 10), 100e9, 1e9) == pytest.approx(1e5 / 1e9)
    assert physics.atomic_time(0, 0, 100e9, 1e9) == 0.0
    assert physics.updates_per_target(100, 0) == 1.0  # unknown targets: all distinct


@given(st.integers(1, 10**7), st.integers(1, 10**6), st.integers(1, 10**6))
def test_atomic_time_grows_as_distinct_targets_shrink(updates, t1, t2):
    lo, hi = sorted((t1, t2))
    slow = physics.atomic_time(updates, physics.updates_per_target(updates, lo), 100e9, 1e9)
    fast = physics.atomic_time(updates, physics.updates_per_target(updates, hi), 100e9, 1e9)
    assert slow >= fast


# -- links ------------------------------------------------------------------------------------


def test_cacheline_links_round_accesses_up_to_lines():
    assert physics.link_wire_bytes(100, False, 64) == 100
    assert physics.link_wire_bytes(100, True, 64) == 128
    assert physics.link_wire_bytes(100, True, 64, n_accesses=10) == 10 * 64
    assert physics.link_wire_bytes(0, True, 64) == 0.0


def test_cacheline_rate_is_capped_by_lines_in_flight():
    # 256 lines of 64 B per 250 ns round trip: 65.5 GB/s at most
    assert physics.cacheline_rate(100e9, 256, 64, 250e-9) == pytest.approx(256 * 64 / 250e-9)
    assert physics.cacheline_rate(10e9, 256, 64, 250e-9) == 10e9


# -- processing in memory -------------------------------------------------------------------


def test_pim_pays_one_pass_per_input_row_plus_the_mode_switch():
    one = float(physics.pim_time(1, 1e9, 2e9, 10e12, 5e12, 1e-6))
    assert one == pytest.approx(1e-6 + max(1e9 / 10e12, 2e9 / 5e12))
    two = float(physics.pim_time(2, 1e9, 2e9, 10e12, 5e12, 1e-6))
    assert two - 1e-6 == pytest.approx(2 * (one - 1e-6))
    assert float(physics.pim_time(0, 1e9, 1e9, 1e12, 1e12, 1e-6)) == 0.0


# -- collectives ------------------------------------------------------------------------------


def test_ring_collective_formulas():
    b, n = 1e8, 8
    t, algo = physics.collective_time("all_reduce", b, n, 80e9, 5e-6, ("ring",))
    assert algo == "ring" and t == pytest.approx(2 * 7 / 8 * b / 80e9 + 14 * 5e-6)
    t, _ = physics.collective_time("all-gather", b, n, 80e9, 5e-6, ("ring",))
    assert t == pytest.approx(7 / 8 * b / 80e9 + 7 * 5e-6)
    assert physics.collective_time("allreduce", b, 1, 80e9, 5e-6)[0] == 0.0


def test_tree_wins_small_messages_ring_wins_large():
    small = physics.collective_time("all_reduce", 16e3, 8, 360e9, 3e-6)
    large = physics.collective_time("all_reduce", 1e9, 8, 360e9, 3e-6)
    assert small[1] == "tree" and large[1] == "ring"
    assert small[0] == pytest.approx(2 * 16e3 / 360e9 + 6 * 3e-6)


def test_one_shot_all_reduce_is_one_step():
    traffic, steps = physics.collective_terms("all_reduce", 8, "one_shot")
    assert (traffic, steps) == (7.0, 1)
    t, algo = physics.collective_time("all_reduce", 16e3, 8, 360e9, 3e-6, ("ring", "tree", "one_shot"))
    assert algo == "one_shot" and t == pytest.approx(3e-6 + 7 * 16e3 / 360e9)
    assert physics.collective_terms("all_gather", 8, "one_shot") is None


@given(st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]), st.floats(1.0, 1e10),
       st.integers(2, 64), st.integers(2, 64))
def test_collective_time_grows_with_ranks(kind, nbytes, n1, n2):
    lo, hi = sorted((n1, n2))
    t_lo, _ = physics.collective_time(kind, nbytes, lo, 100e9, 3e-6)
    t_hi, _ = physics.collective_time(kind, nbytes, hi, 100e9, 3e-6)
    assert t_hi >= t_lo * (1 - 1e-12)


def test_unknown_collective_is_a_user_error():
    with pytest.raises(physics.PhysicsError, match="all_shuffle"):
        physics.collective_kind("all_shuffle")
    assert physics.collective_kind("c10d::broadcast") == "broadcast"
    assert math.isfinite(physics.collective_time("send", 1e6, 2, 100e9, 3e-6)[0])


def test_hierarchical_all_reduce_2x8_by_hand():
    from hw_models.physics import hierarchical_collective

    # 2 nodes x 8 GPUs, a 256 MB all-reduce; NVLink 360 GB/s and 1 us a step in the node,
    # InfiniBand 42.5 GB/s and 5 us a step across
    S = 256e6
    r = hierarchical_collective("all_reduce", S, 8, 2, (360e9, 1e-6), (42.5e9, 5e-6))
    # in the node: reduce-scatter then all-gather, 7 steps of 7/8 S each way
    intra = 2 * (7 * 1e-6 + 7 / 8 * S / 360e9)
    # across: each GPU all-reduces its 32 MB shard with its peer on the other node, 2 steps of 1/2
    inter = 2 * 5e-6 + 2 * (1 / 2) * (S / 8) / 42.5e9
    assert r["intra_s"] == pytest.approx(intra, rel=1e-12)
    assert r["inter_s"] == pytest.approx(inter, rel=1e-12)
    assert r["time_s"] == pytest.approx(intra + inter, rel=1e-12)
    assert r["inter_bytes"] == pytest.approx(S / 8)
    # the flat 16-rank ring over the slow link would move 15/8 S per rank over the NIC
    assert r["time_s"] < 2 * 15 / 16 * S / 42.5e9


def test_hierarchical_all_to_all_levels_overlap():
    from hw_models.physics import hierarchical_collective

    S = 64e6
    r = hierarchical_collective("all_to_all", S, 8, 4, (360e9, 1e-6), (42.5e9, 5e-6))
    assert r["inter_bytes"] == pytest.approx(3 / 4 * S)
    assert r["intra_bytes"] == pytest.approx(7 / 32 * S)
    assert r["time_s"] == pytest.approx(max(r["intra_s"], r["inter_s"]))
    one = hierarchical_collective("all_to_all", S, 8, 1, (360e9, 1e-6), (42.5e9, 5e-6))
    assert one["inter_s"] == 0 and one["intra_bytes"] == pytest.approx(7 / 8 * S)
