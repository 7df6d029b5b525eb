"""Per-op-kind compute efficiency: optional data on a ComputeUnit, most specific key wins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw_models.catalog import load
from hw_models.quantity import EfficiencyCurve
from hw_models.spec import ComputeUnit
from simulator.costmodel import Structure
from simulator.opterms import kind_keys
from simulator.params import Params
from workloads.op import Op


def _unit(**kinds):
    return ComputeUnit.model_validate({
        "peak": {"value": "100 GFLOP/s", "source": "test"},
        "efficiency": {"value": 0.5, "source": "test"},
        "kind_efficiency": {k: {"value": v, "source": "test"} for k, v in kinds.items()},
    })


def test_default_is_empty_and_catalog_specs_still_load():
    assert _unit().kind_efficiency == {}
    sys_ = load("xeon-8480")
    assert all(u.kind_efficiency == {} for u in sys_.device.vector.values())


def test_most_specific_key_wins_then_kind_then_generic():
    u = _unit(elementwise=0.2, **{"elementwise.exp": 0.05})
    assert u.curve(("elementwise.exp", "elementwise"))(1e6) == 0.05
    assert u.curve(("elementwise.add", "elementwise"))(1e6) == 0.2
    assert u.curve(("softmax.softmax", "softmax"))(1e6) == 0.5
    assert u.curve(())(1e6) == 0.5


def _rate(u: ComputeUnit, keys: tuple[str, ...], flops: float) -> float:
    """The rate the cost model reads for an op with these efficiency keys (simulator.params)."""
    sys_ = load("xeon-8480")
    sys_.device.vector["fp32"] = u
    st = Structure(sys_)
    return float(Params(sys_).rate(st.rate_key("vector.fp32", keys), flops))


def test_the_cost_model_reads_the_kind_curve():
    u = _unit(softmax=0.1)
    # 100 GFLOP/s: 0.5 generic -> 50 GFLOP/s, 0.1 for softmax -> 10 GFLOP/s
    assert _rate(u, (), 1e6) == pytest.approx(50e9)
    assert _rate(u, ("softmax.softmax", "softmax"), 1e6) == pytest.approx(10e9)
    assert _rate(u, ("norm",), 1e6) == pytest.approx(50e9)


def _op(kind, name, **attrs):
    return Op(0, name, kind, "fp32", attrs=attrs)


def test_kind_keys_parse_traced_names():
    assert kind_keys(_op("elementwise", "aten.gelu.default")) == ("elementwise.gelu", "elementwise")
    assert kind_keys(_op("elementwise", "aten.add_.Scalar")) == ("elementwise.add", "elementwise")
    assert kind_keys(_op("softmax", "aten._softmax.default")) == ("softmax.softmax", "softmax")
    assert kind_keys(_op("norm", "")) == ("norm",)
    # attention is keyed by phase: a few query rows over a cache, or square prefill tiles
    assert kind_keys(_op("attention", "aten::scaled_dot_product_attention", sq=1, skv=4096)) == (
        "attention.decode", "attention")
    assert kind_keys(_op("attention", "aten::scaled_dot_product_attention", sq=512, skv=512)) == (
        "attention.prefill", "attention")


def test_kind_curve_needs_a_source_and_valid_points():
    with pytest.raises(ValueError):
        ComputeUnit.model_validate({"peak": {"value": "1 GFLOP/s", "source": "t"},
                                    "efficiency": {"value": 0.5, "source": "t"},
                                    "kind_efficiency": {"softmax": {"value": 0.5}}})
    with pytest.raises(ValueError):
        _unit(softmax=1.5)


@given(st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(1.0, 1e12))
def test_more_kind_efficiency_is_never_slower(e1, e2, flops):
    lo, hi = sorted((e1, e2))
    t_lo = flops / _rate(_unit(matmul=lo), ("matmul",), flops)
    t_hi = flops / _rate(_unit(matmul=hi), ("matmul",), flops)
    assert t_hi <= t_lo * (1 + 1e-12)
    assert isinstance(_unit(matmul=lo).kind_efficiency["matmul"], EfficiencyCurve)
