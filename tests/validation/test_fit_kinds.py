"""Per-op-kind compute curves: grouping, recovery from synthetic rows, spec write-back."""

from __future__ import annotations

import numpy as np
import pytest
from test_fit import _spec

from hw_models import physics
from hw_models.catalog import load
from validation.features import OpFeatures
from validation.fit import MIN_KIND_OPS, RowFeatures, compute_groups, fit
from validation.specio import apply_fit, write_yaml

# exp: a transcendental at 1 GFLOP/s; gelu 8 GFLOP/s; the rest of the vector unit 20 GFLOP/s
TRUE = {"elementwise.exp": 1e9, "elementwise.gelu": 8e9, "vector.fp32": 2e10, "l2": 8e10}


def _op(flops, name, nbytes):
    return OpFeatures(1, "vector.fp32", flops, flops, [("l2", nbytes)],
                      keys=physics.kind_keys("elementwise", f"aten.{name}.default"))


def _truth(f: OpFeatures) -> float:
    key = f.keys[0] if f.keys and f.keys[0] in TRUE else "vector.fp32"
    return 2e-7 + 1e-7 + max(f.work_flops / TRUE[key], f.demands[0][1] / TRUE["l2"])


def _rows():
    rows = [RowFeatures(f"d{i}", "dispatch", 3e-7, [OpFeatures(1, "vector.fp32", 8.0, 8.0, [("l1", 96.0)])])
            for i in range(3)]
    for name in ("exp", "gelu", "relu"):
        for n in np.geomspace(1e4, 1e6, 4):
            f = _op(n * (8 if name == "gelu" else 1), name, 8 * n)
            rows.append(RowFeatures(f"{name}{n:.0f}", "elementwise", _truth(f), [f]))
    return rows


def test_groups_need_enough_ops_and_name_keys_only_for_elementwise():
    ops = [_op(1e4, "exp", 1e3)] * MIN_KIND_OPS + [_op(1e4, "tanh", 1e3)] * (MIN_KIND_OPS - 1)
    mm = OpFeatures(1, "matrix.fp32", 1e6, 1e6, [], keys=physics.kind_keys("matmul", "aten.addmm.default"))
    groups = compute_groups(ops + [mm] * MIN_KIND_OPS)
    assert groups[0] == ("vector.fp32@elementwise.exp", "elementwise.exp")
    # too few tanh ops for their own curve: they share the kind's
    assert groups[MIN_KIND_OPS] == ("vector.fp32@elementwise", "elementwise")
    # a GEMM is a GEMM whether traced as mm or addmm
    assert groups[-1] == ("matrix.fp32@matmul", "matmul")


def test_fit_recovers_per_kind_rates_and_writes_them_to_the_spec(tmp_path):
    base = _spec()
    res = fit(_rows(), base, loss="linear")
    for key in ("elementwise.exp", "elementwise.gelu"):
        xs, rates = res.curves[f"unit:vector.fp32@{key}"]
        assert np.allclose(rates, TRUE[key], rtol=0.05), (key, rates)
    spec, _ = apply_fit(base, res, "test")
    cu = spec.device.vector["fp32"]
    for key in ("elementwise.exp", "elementwise.gelu"):
        eff = cu.kind_efficiency[key](1e5)
        assert cu.peak.value * eff == pytest.approx(TRUE[key], rel=0.05)
    write_yaml(spec, tmp_path / "hw.yaml")
    back = load(str(tmp_path / "hw.yaml"))
    assert set(back.device.vector["fp32"].kind_efficiency) == set(cu.kind_efficiency)
    exp = physics.compute_time(1e6, back.device.vector["fp32"], kind=("elementwise.exp", "elementwise"))
    assert exp == pytest.approx(1e6 / TRUE["elementwise.exp"], rel=0.05)


def test_a_kind_rate_above_the_peak_raises_it_and_keeps_other_curves_rates():
    base = _spec()
    cu0 = base.device.vector["fp32"]
    old_rate = cu0.peak.value * cu0.efficiency(1e5)
    res = fit(_rows(), base, loss="linear")
    xs, rates = res.curves["unit:vector.fp32@elementwise.exp"]
    res.curves = {"unit:vector.fp32@elementwise.exp": (xs, [r * 1e3 for r in rates])}  # far above the peak
    spec, _ = apply_fit(base, res, "test")
    cu = spec.device.vector["fp32"]
    assert cu.peak.value == pytest.approx(max(rates) * 1e3)
    assert cu.peak.value * cu.efficiency(1e5) == pytest.approx(old_rate, rel=1e-3)
