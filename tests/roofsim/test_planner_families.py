"""The planner's sweep on parametric families (``simulate_point``) gives what
``simulate`` gives on the traced graphs, to the last bit."""

from __future__ import annotations

import math

import pytest

from roofsim.planner import evaluate, plan
from simulator import simulate, simulate_point
from workloads import build, builder


def _reference(graph, system, **kw):
    """``simulate(...).summary()`` on the traced graph: not the default, so the sweep takes it."""
    return simulate(graph, system, **kw).summary()


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.parametrize("launch,fusion", [("eager", "none"), ("graph", "serving")])
def test_sweep_on_families_equals_simulate_on_graphs(launch, fusion):
    kw = dict(tp=[1, 2], batch=[1, 24], context=[100, 3000], launch=launch, fusion=fusion, slo_tpot_ms=40,
              progress=False)
    hw = ["h100-sxm", "a100-80gb", "xeon-8480"]
    evaluate.clear_caches()
    fast = plan(["qwen2.5-0.5b"], hw, **kw)
    evaluate.clear_caches()
    ref = plan(["qwen2.5-0.5b"], hw, simulate_fn=_reference, **kw)
    assert len(fast) == len(ref) == 24 and fast["fits"].sum() > 10
    for col in fast.columns:
        assert all(_same(a, b) for a, b in zip(fast[col], ref[col], strict=True)), col


@pytest.mark.parametrize("phase,tp,hw,placement", [
    ("decode", 1, "h100-sxm", None),
    ("decode", 2, "a100-80gb", None),
    ("prefill", 2, "h100-sxm", None),
    ("decode", 1, "xeon-8480", None),
    ("decode", 1, "h100-sxm", "host"),
])
def test_simulate_point_equals_simulate(phase, tp, hw, placement):
    from simulator.placement import Placement

    pl = Placement(weights=placement) if placement else None
    b, x = 6, 777
    ctx, prompt = (x, 512) if phase == "decode" else (0, x)
    req = builder.llm_request("qwen2.5-0.5b", phase, "bf16", {})
    pt = builder.family(req, "none", tp).arrays.at(b, x, {"batch": b, "context": ctx, "prompt": prompt})
    got = simulate_point(pt, hw, launch="eager", tp=tp, placement=pl)
    ref = simulate(build("qwen2.5-0.5b", phase, batch=b, context=ctx, prompt=prompt), hw, tp=tp, placement=pl)
    assert got.summary() == ref.summary()
    assert got.ops[["start_s", "end_s", "bound", "term"]].equals(ref.ops[["start_s", "end_s", "bound", "term"]])
