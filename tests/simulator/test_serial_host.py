"""A CPU device dispatches and computes on one thread: no overlap of host and kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import make_graph, stub_costs

from hw_models.catalog import load
from simulator import simulate
from simulator.engine import build_engine_plan, run_simpy
from simulator.fastpath import chain_times, run_fast


def xeon():
    return load("xeon-8480")


def test_cpu_step_is_dispatch_plus_kernels_in_series():
    # 3 ops of 10 us each; dispatch_overhead h per launch. Overlapped, the step would be
    # h + 3 x 10 us (kernels longer than dispatch hide it); serially it is 3 x (h + 10 us).
    sys_ = xeon()
    h = sys_.host.dispatch_overhead.value
    g = make_graph([{"dur": 1e-5}] * 3)
    for engine in ("fast", "simpy"):
        r = simulate(g, sys_, engine=engine, cost_fn=stub_costs)
        assert r.step_time_s == pytest.approx(3 * (h + 1e-5), rel=1e-12)


def test_gpu_still_overlaps_dispatch_with_kernels():
    sys_ = load("h100-sxm")
    h = sys_.host.dispatch_overhead.value
    g = make_graph([{"dur": 10 * h}] * 3)
    r = simulate(g, sys_, cost_fn=stub_costs)
    assert r.step_time_s == pytest.approx(h + 30 * h, rel=1e-12)


def test_serial_recurrence_matches_a_loop():
    host = np.array([1.0, 0.0, 2.0, 0.5])
    dur = np.array([3.0, 1.0, 0.0, 2.0])
    issue, start, end = chain_times(host, dur, serial_host=True)
    prev = 0.0
    for i in range(len(dur)):
        assert issue[i] == pytest.approx(prev + host[i])
        assert start[i] == issue[i]
        prev = issue[i] + dur[i]
        assert end[i] == pytest.approx(prev)
    assert end[-1] == pytest.approx(math.fsum(host) + math.fsum(dur))


_op = st.fixed_dictionaries({
    "dur": st.floats(0.0, 5e-5, allow_nan=False),
    "launches": st.integers(0, 3),
    "fixed": st.floats(0.0, 5e-6),
    "demands": st.lists(st.tuples(st.sampled_from(["dev0.dram", "dev0.l2"]),
                                  st.floats(1.0, 1e8), st.floats(1e9, 4e12)), max_size=2),
})


@settings(max_examples=40, deadline=None)
@given(st.lists(_op, min_size=1, max_size=30))
def test_fast_path_equals_simpy_with_a_serial_host(specs):
    g = make_graph(specs)
    sys_ = xeon()
    eplan = build_engine_plan(g, sys_, stub_costs(g, sys_, None), "eager")
    assert eplan.chain and eplan.serial_host
    a, b = run_fast(eplan), run_simpy(eplan)
    for x, y in ((a.issue, b.issue), (a.start, b.start), (a.end, b.end)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-15)
    # serial: nothing overlaps, so the step is the sum of host costs and durations
    assert b.end[-1] == pytest.approx(eplan.host_cost.sum() + eplan.dur.sum(), rel=1e-9, abs=1e-15)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5e-5), st.integers(0, 1)), min_size=2, max_size=20))
def test_serial_host_on_two_streams_never_overlaps(pairs):
    g = make_graph([{"dur": d, "stream": s} for d, s in pairs])
    sys_ = xeon()
    eplan = build_engine_plan(g, sys_, stub_costs(g, sys_, None), "eager")
    tl = run_simpy(eplan)
    assert np.all(tl.start[1:] >= tl.end[:-1] - 1e-15)
    assert tl.end.max() == pytest.approx(eplan.host_cost.sum() + eplan.dur.sum(), rel=1e-9, abs=1e-15)
