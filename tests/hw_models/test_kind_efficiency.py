"""Per-op-kind compute efficiency: optional data on a ComputeUnit, most specific key wins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw_models import physics
from hw_models.catalog import load
from hw_models.spec import ComputeUnit, EfficiencyCurve


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


def test_compute_time_reads_the_kind_curve():
    u = _unit(softmax=0.1)
    # 1e6 FLOPs at 100 GFLOP/s: 0.5 generic -> 20 us, 0.1 for softmax -> 100 us
    assert physics.compute_time(1e6, u) == pytest.approx(20e-6)
    assert physics.compute_time(1e6, u, kind=("softmax.softmax", "softmax")) == pytest.approx(100e-6)
    assert physics.compute_time(1e6, u, kind=("norm",)) == pytest.approx(20e-6)


def test_kind_keys_parse_traced_names():
    assert physics.kind_keys("elementwise", "aten.gelu.default") == ("elementwise.gelu", "elementwise")
    assert physics.kind_keys("elementwise", "aten.add_.Scalar") == ("elementwise.add", "elementwise")
    assert physics.kind_keys("softmax", "aten._softmax.default") == ("softmax.softmax", "softmax")
    assert physics.kind_keys("attention", "aten::scaled_dot_product_attention") == (
        "attention.scaled_dot_product_attention", "attention")
    assert physics.kind_keys("norm", "") == ("norm",)


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
    t_lo = physics.compute_time(flops, _unit(matmul=lo), kind=("matmul",))
    t_hi = physics.compute_time(flops, _unit(matmul=hi), kind=("matmul",))
    assert t_hi <= t_lo * (1 + 1e-12)
    assert isinstance(_unit(matmul=lo).kind_efficiency["matmul"], EfficiencyCurve)
