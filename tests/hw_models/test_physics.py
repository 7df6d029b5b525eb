"""hw_models.physics: closed forms and invariants of the small time functions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models import physics
from hw_models.catalog import load
from hw_models.spec import AtomicSpec, ComputeUnit, EfficiencyCurve, LinkSpec, MemoryLevel, PimSpec, flat

SRC = {"source": "test"}


def q(v):
    return {"value": v, **SRC}


def level(bw="1 TB/s", eff=0.5):
    return MemoryLevel(name="m", capacity=q("1 GiB"), bandwidth=q(bw), latency=q("100 ns"), efficiency=flat(eff, "t"))


def unit(peak="100 TFLOP/s", eff=1.0):
    return ComputeUnit(peak=q(peak), efficiency=flat(eff, "t"))


def link(access="bulk", bw="10 GB/s", lat="2 us", eff=0.5, gran=None):
    d = {"name": "l", "kind": "pcie" if access == "bulk" else "cxl", "bandwidth": q(bw), "latency": q(lat),
         "access": access, "efficiency": q(eff)}
    if gran:
        d["granularity"] = q(gran)
    return LinkSpec.model_validate(d)


ATOM = AtomicSpec(update_rate=q("100 G/s"), same_address_rate=q("1 G/s"))


# -- efficiency and memory ----------------------------------------------------------------


@given(st.floats(min_value=0.0, max_value=1e13, allow_nan=False))
def test_fast_efficiency_matches_curve(size):
    curve = EfficiencyCurve(points=[(4096, 0.02), (1 << 20, 0.3), (1 << 28, 0.9)], source="t")
    assert physics.efficiency(curve, size) == pytest.approx(curve(size), rel=1e-9, abs=1e-12)


def test_memory_time_is_bytes_over_effective_bandwidth():
    assert physics.memory_time(1e9, level("1 TB/s", 0.5)) == pytest.approx(1e9 / 0.5e12)
    assert physics.memory_time(0, level()) == 0.0


# -- compute ------------------------------------------------------------------------------


def test_compute_time_without_shape_is_flops_over_peak_times_efficiency():
    assert physics.compute_time(1e12, unit("100 TFLOP/s", 0.5)) == pytest.approx(1e12 / 50e12)


def test_wave_quantisation_one_extra_tile_costs_a_second_wave():
    u, cu = unit(), 132
    k = 4096
    # tiles = cu (one full wave) vs tiles = cu + 1 (two waves, the second nearly empty)
    one = physics.compute_time(2 * 128 * (128 * cu) * k, u, m=128, n=128 * cu, compute_units=cu)
    two = physics.compute_time(2 * 128 * (128 * (cu + 1)) * k, u, m=128, n=128 * (cu + 1), compute_units=cu)
    assert two / one == pytest.approx(2.0, rel=1e-9)


def test_gemm_with_fewer_tiles_than_units_cannot_use_the_whole_device():
    u, cu = unit("100 TFLOP/s"), 132
    flops = 2 * 128 * 128 * 8192  # one tile of work
    t = physics.compute_time(flops, u, m=128, n=128, compute_units=cu)
    # one tile occupies the device for a whole wave: it attains 1/cu of peak
    assert flops / t == pytest.approx(100e12 / cu)
    assert physics.wave_factor(128 * 12, 128 * 11, 1, cu) == pytest.approx(1.0)  # 132 tiles: exact fit


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 4), st.integers(1, 200))
def test_wave_factor_at_least_one(m, n, batch, cu):
    assert physics.wave_factor(m, n, batch, cu) >= 1.0 - 1e-12


def test_compute_unit_fallbacks_are_documented_and_never_zero():
    dev = load("h100-sxm").device
    u, label = physics.compute_unit(dev, "bf16", matrix=True)
    assert label == "matrix.bf16" and u.peak.value == dev.matrix["bf16"].peak.value
    # int4 has no matrix or vector peak on H100: the fp32 vector unit does it
    u, label = physics.compute_unit(dev, "int4", matrix=True)
    assert label == "vector.fp32" and u.peak.value > 0
    u, label = physics.compute_unit(dev, "fp8", matrix=False)
    assert label == "vector.fp32"
    # a device with no fp32 vector unit falls back to its slowest listed unit
    dev2 = dev.model_copy(deep=True)
    dev2.vector = {"bf16": unit("10 TFLOP/s"), "fp16": unit("20 TFLOP/s")}
    u, label = physics.compute_unit(dev2, "int8", matrix=False)
    assert u.peak.value == pytest.approx(10e12)


# -- atomics ------------------------------------------------------------------------------


def test_atomic_time_formula():
    assert physics.atomic_time(1e6, 1e6, ATOM) == pytest.approx(1e6 / 100e9)
    assert physics.atomic_time(1e6, 10, ATOM) == pytest.approx((1e6 / 10) / 1e9)
    assert physics.atomic_time(0, 0, ATOM) == 0.0


@given(st.integers(1, 10**7), st.integers(1, 10**6), st.integers(1, 10**6))
def test_atomic_time_grows_as_distinct_targets_shrink(updates, t1, t2):
    lo, hi = sorted((t1, t2))
    assert physics.atomic_time(updates, lo, ATOM) >= physics.atomic_time(updates, hi, ATOM)


# -- links ----------------------------------------------------------------------------------


def test_bulk_link_pays_latency_per_transfer():
    lk = link("bulk", "10 GB/s", "2 us", 0.5)
    assert physics.link_time(1e6, lk) == pytest.approx(2e-6 + 1e6 / 5e9)
    assert physics.link_time(1e6, lk, n_accesses=4) == pytest.approx(4 * 2e-6 + 1e6 / 5e9)
    assert physics.link_time(0, lk) == 0.0


def test_cacheline_link_rounds_accesses_up_to_lines():
    lk = link("cacheline", "32 GB/s", "10 ns", 1.0, gran="64 B")
    assert physics.link_wire_bytes(100, lk) == 128
    assert physics.link_wire_bytes(100, lk, n_accesses=10) == 10 * 64
    # latency once, then the in-flight window keeps the pipe full
    assert physics.link_time(6400, lk) == pytest.approx(10e-9 + 6400 / 32e9)


def test_cacheline_link_capped_by_lines_in_flight():
    lk = link("cacheline", "1 TB/s", "1 us", 1.0, gran="64 B")
    assert physics.link_bandwidth(lk, concurrency=100) == pytest.approx(100 * 64 / 1e-6)
    assert physics.link_bandwidth(link("bulk", "1 TB/s", "1 us", 1.0)) == pytest.approx(1e12)


# -- PIM and collectives ----------------------------------------------------------------------


def test_pim_time_formula():
    pim = PimSpec(internal_bandwidth=q("10 TB/s"), peak=q("5 TFLOP/s"), mode_switch=q("1 us"))
    assert physics.pim_time(1e9, 1e9, pim) == pytest.approx(1e-6 + max(1e9 / 10e12, 1e9 / 5e12))
    assert physics.pim_time(0, 0, pim) == 0.0


def test_ring_collective_formulas():
    lk = link("bulk", "100 GB/s", "5 us", 0.8)
    b, n = 1e8, 8
    assert physics.collective_time("all_reduce", b, n, lk) == pytest.approx(2 * 7 / 8 * b / 80e9 + 14 * 5e-6)
    assert physics.collective_time("all-gather", b, n, lk) == pytest.approx(7 / 8 * b / 80e9 + 7 * 5e-6)
    assert physics.collective_time("allreduce", b, 1, lk) == 0.0


@given(st.sampled_from(["all_reduce", "all_gather", "reduce_scatter"]), st.floats(1.0, 1e10),
       st.integers(1, 64), st.integers(1, 64))
@settings(max_examples=50)
def test_collective_time_grows_with_ranks(kind, nbytes, n1, n2):
    lk = link("bulk", "100 GB/s", "5 us", 0.8)
    lo, hi = sorted((n1, n2))
    assert physics.collective_time(kind, nbytes, hi, lk) >= physics.collective_time(kind, nbytes, lo, lk)


def test_unknown_collective_is_a_user_error():
    with pytest.raises(physics.PhysicsError) as e:
        physics.collective_time("all_shuffle", 1e6, 4, link())
    assert getattr(e.value, "user_facing", False)
    assert math.isfinite(physics.collective_time("c10d::broadcast", 1e6, 4, link()))


def test_tree_all_reduce_wins_small_messages_ring_wins_large():
    lk = link("bulk", "450 GB/s", "3 us", 0.8)
    assert physics.collective_algorithm("all_reduce", 16e3, 8, lk) == "tree"
    assert physics.collective_algorithm("all_reduce", 1e9, 8, lk) == "ring"
    assert physics.collective_time("all_reduce", 16e3, 8, lk, "tree") == pytest.approx(2 * 16e3 / 360e9 + 6 * 3e-6)
    auto = physics.collective_time("all_reduce", 16e3, 8, lk, "auto")
    assert auto == min(physics.collective_time("all_reduce", 16e3, 8, lk, a) for a in ("ring", "tree"))
    # all_gather has no tree: the ring is used whatever is asked
    assert physics.collective_time("all_gather", 1e6, 8, lk, "tree") == physics.collective_time("all_gather", 1e6, 8, lk)


@given(st.floats(1.0, 1e10), st.integers(1, 64), st.integers(1, 64))
@settings(max_examples=50)
def test_auto_collective_time_grows_with_ranks(nbytes, n1, n2):
    lk = link("bulk", "100 GB/s", "5 us", 0.8)
    lo, hi = sorted((n1, n2))
    assert physics.collective_time("all_reduce", nbytes, hi, lk, "auto") >= physics.collective_time(
        "all_reduce", nbytes, lo, lk, "auto")
