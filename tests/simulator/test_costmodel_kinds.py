"""Causal attention FLOPs and per-kind compute efficiency in the cost model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models.catalog import load
from hw_models.quantity import flat
from simulator.costmodel import graph_costs, op_cost
from simulator.opterms import causal_fraction
from workloads.op import Access, Op


def _cpu(matrix_eff=0.5):
    s = load("xeon-8480").model_copy(deep=True)
    for u in s.device.matrix.values():
        u.efficiency = flat(matrix_eff, "test")
    for u in s.device.vector.values():
        u.efficiency = flat(0.5, "test")
    return s


def _attn(sq, skv, causal, d=64, h=8):
    a = {"b": 1, "h": h, "sq": sq, "skv": skv, "d": d, "dv": d, "kv_heads": h, "causal": causal}
    dense = 2.0 * h * sq * skv * (d + d)
    # tiny tensors: compute binds, the cost is compute_s + launch latency
    return Op(1, "aten::scaled_dot_product_attention", "attention", "fp32", flops={"fp32": dense},
              reads=[Access("q", 64, "activation")], writes=[Access("o", 64, "output")], attrs=a)


def test_causal_prefill_computes_the_visible_triangle():
    # sq = skv = 64, d = 64, 8 heads: dense = 2*8*64*64*128 = 8,388,608 FLOPs. Query i sees
    # keys 0..i, 64*65/2 = 2080 of 4096 scores: 65/128 of the dense count, 4,259,840 FLOPs.
    sys_ = _cpu()
    peak = sys_.device.matrix["fp32"].peak.value
    c = op_cost(_attn(64, 64, True), sys_)
    assert causal_fraction(_attn(64, 64, True)) == pytest.approx(65 / 128)
    assert c.compute_s == pytest.approx(4_259_840 / (peak * 0.5))
    assert c.roofline_s <= c.time_s
    full = op_cost(_attn(64, 64, False), sys_)
    assert full.compute_s == pytest.approx(8_388_608 / (peak * 0.5))


def test_decode_attention_keeps_the_full_count():
    # sq = 1 against 512 cached keys sees all of them, causal or not
    sys_ = _cpu()
    a, b = op_cost(_attn(1, 512, True), sys_), op_cost(_attn(1, 512, False), sys_)
    assert a.compute_s == b.compute_s
    assert causal_fraction(_attn(1, 512, True)) == 1.0
    assert causal_fraction(_attn(128, 512, True)) == 1.0  # not square: torch aligns top-left; left dense


def test_graph_costs_do_not_merge_causal_and_dense_ops_of_one_shape():
    from workloads.graph import WorkloadGraph

    g = WorkloadGraph(meta={"model": "t", "phase": "prefill", "batch": 1, "context": 64, "dtype": "fp32"})
    g.add(_attn(64, 64, True))
    op2 = _attn(64, 64, False)
    op2.id = 2
    g.add(op2)
    c1, c2 = graph_costs(g, _cpu())
    assert c1.compute_s == pytest.approx(c2.compute_s * 65 / 128)


def _softmax(n):
    return Op(1, "aten._softmax.default", "softmax", "fp32", flops={"fp32": 5.0 * n},
              reads=[Access("x", 4 * n, "activation")], writes=[Access("y", 4 * n, "output")])


def test_kind_efficiency_slows_only_its_kind():
    sys_ = _cpu()
    base = op_cost(_softmax(4096), sys_)
    sys_.device.vector["fp32"].kind_efficiency = {"softmax": flat(0.05, "test")}
    slow = op_cost(_softmax(4096), sys_)
    assert slow.compute_s == pytest.approx(base.compute_s * 10)
    assert slow.roofline_s == pytest.approx(base.roofline_s)
    assert slow.time_s >= slow.roofline_s
    add = Op(1, "aten.add.Tensor", "elementwise", "fp32", flops={"fp32": 4096.0},
             reads=[Access("x", 16384, "activation")], writes=[Access("y", 16384, "output")])
    assert op_cost(add, sys_).compute_s == op_cost(add, _cpu()).compute_s


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4096), st.booleans(), st.floats(0.01, 1.0))
def test_attention_invariants(s, causal, eff):
    sys_ = _cpu(eff)
    c = op_cost(_attn(s, s, causal), sys_)
    assert c.time_s >= c.roofline_s
    # causal never costs more than dense
    assert c.compute_s <= op_cost(_attn(s, s, False), sys_).compute_s * (1 + 1e-12)
