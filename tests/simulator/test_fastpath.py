"""The closed-form fast path equals the simpy engine on single-stream chains."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import h100, make_graph, stub_costs

from simulator import simulate
from simulator.engine import build_engine_plan, run_simpy
from simulator.fastpath import chain_times, run_fast
from workloads import build

_op = st.fixed_dictionaries({
    "dur": st.floats(0.0, 5e-5, allow_nan=False),
    "launches": st.integers(0, 3),
    "fixed": st.floats(0.0, 5e-6),
    "demands": st.lists(st.tuples(st.sampled_from(["dev0.hbm", "dev0.l2", "host.link.h2d"]),
                                  st.floats(1.0, 1e8), st.floats(1e9, 4e12)), max_size=2),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(_op, min_size=1, max_size=40), st.sampled_from(["eager", "graph"]))
def test_fast_path_equals_simpy(specs, launch):
    g = make_graph(specs)
    sys_ = h100()
    eplan = build_engine_plan(g, sys_, stub_costs(g, sys_, None), launch)
    assert eplan.chain
    a, b = run_fast(eplan), run_simpy(eplan)
    for x, y in ((a.issue, b.issue), (a.start, b.start), (a.end, b.end)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-15)
    fast = simulate(g, sys_, launch=launch, engine="fast", cost_fn=stub_costs)
    slow = simulate(g, sys_, launch=launch, engine="simpy", cost_fn=stub_costs)
    assert fast.step_time_s == pytest.approx(slow.step_time_s, rel=1e-9, abs=1e-15)
    for k, v in slow.summary()["time_by_bound"].items():
        assert fast.summary()["time_by_bound"].get(k, 0.0) == pytest.approx(v, rel=1e-6, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e-4), st.floats(0, 1e-4)), min_size=1, max_size=50))
def test_recurrence_matches_a_loop(pairs):
    host, dur = np.array(pairs).T
    issue, start, end = chain_times(host, dur)
    t_host, prev = 0.0, 0.0
    for i in range(len(dur)):
        t_host += host[i]
        s = max(t_host, prev)
        prev = s + dur[i]
        assert issue[i] == pytest.approx(t_host, abs=1e-15)
        assert start[i] == pytest.approx(s, abs=1e-13)
        assert end[i] == pytest.approx(prev, abs=1e-13)


def test_auto_picks_fast_only_when_exact():
    single = simulate(make_graph([{"dur": 1e-6}] * 3), h100(), cost_fn=stub_costs)
    assert single.summary()["engine"] == "fast"
    two = simulate(make_graph([{"dur": 1e-6, "stream": s} for s in (0, 1, 0)]), h100(), cost_fn=stub_costs)
    assert two.summary()["engine"] == "simpy"


def test_fast_path_equals_simpy_on_a_traced_model():
    g = build("qwen2.5-0.5b", phase="decode", batch=1, context=256)
    for launch in ("eager", "graph"):
        a = simulate(g, "h100-sxm", launch=launch, engine="fast")
        b = simulate(g, "h100-sxm", launch=launch, engine="simpy")
        np.testing.assert_allclose(a.to_pandas()["end_s"], b.to_pandas()["end_s"], rtol=1e-9, atol=1e-15)
        assert a.summary()["bottleneck"] == b.summary()["bottleneck"]
