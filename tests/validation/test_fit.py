"""Fitting recovers known parameters from synthetic measurements; the spec round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from hw_models.catalog import load, resolve
from validation.features import OpFeatures
from validation.fit import RowFeatures, fit, mirror_predict
from validation.specio import apply_fit, write_yaml


def _q(v, unit=""):
    return {"value": f"{v} {unit}".strip(), "source": "test"}


def _spec():
    eff = {"value": 0.5, "source": "test"}
    lv = lambda name, cap, bw: {"name": name, "capacity": _q(cap, "B"), "bandwidth": _q(bw, "B/s"),  # noqa: E731
                                "latency": _q(1e-9, "s"), "efficiency": eff}
    return resolve({
        "id": "toy-cpu", "name": "toy",
        "host": {"name": "h", "cores": _q(1), "dispatch_overhead": _q(3e-6, "s"), "graph_launch": _q(1e-5, "s"),
                 "graph_node_cost": _q(1e-6, "s"), "memory_capacity": _q(2**34, "B"),
                 "memory_bandwidth": _q(1e10, "B/s"), "memory_latency": _q(1e-7, "s")},
        "device": {"name": "toy", "kind": "cpu", "compute_units": _q(1), "tile_m": 16, "tile_n": 16,
                   "kernel_latency": _q(2e-7, "s"),
                   "matrix": {"fp32": {"peak": _q(1e11, "FLOP/s"), "efficiency": eff}},
                   "vector": {"fp32": {"peak": _q(1e11, "FLOP/s"), "efficiency": eff}},
                   "memory": [lv("l1", 32768, 4e11), lv("l2", 2**20, 2e11), lv("dram", 2**34, 4e10)],
                   "atomics": {"update_rate": _q(1e9, "/s"), "same_address_rate": _q(1e8, "/s")}},
    })


TRUE = {"l1": 1.0e11, "l2": 8.0e10, "dram": 2.0e10, "matrix.fp32": 5.0e10, "vector.fp32": 2.0e10,
        "dispatch": 1.0e-7, "update": 2.0e9, "same": 5.0e7, "lat": 2e-7}


def _truth(f: OpFeatures) -> float:
    """The physics written out independently of the fit's mirror."""
    body = f.work_flops / TRUE[f.unit]
    for lvl, b in f.demands:
        body = max(body, b / TRUE[lvl])
    if f.updates:
        body = max(body, f.updates / TRUE["update"], (f.updates / f.distinct) / TRUE["same"])
    return f.launches * (TRUE["dispatch"] + TRUE["lat"]) + body


def _rows() -> list[RowFeatures]:
    rows = []

    def add(fam, f):
        rows.append(RowFeatures(f"{fam}/{len(rows)}", fam, _truth(f), [f]))

    for _ in range(3):
        add("dispatch", OpFeatures(1, "vector.fp32", 8.0, 8.0, [("l1", 96.0)]))
    for b in np.geomspace(1.6e4, 3.2e4, 4):
        add("bandwidth", OpFeatures(1, "vector.fp32", b / 16, b / 16, [("l1", b)]))
    for b in np.geomspace(1e5, 1e6, 4):
        add("bandwidth", OpFeatures(1, "vector.fp32", b / 16, b / 16, [("l2", b)]))
    for b in np.geomspace(4e6, 3e8, 5):
        add("bandwidth", OpFeatures(1, "vector.fp32", b / 16, b / 16, [("dram", b)]))
    for fl in np.geomspace(1e7, 1e10, 5):
        add("matmul", OpFeatures(1, "matrix.fp32", fl, fl, [("l2", 5e5)]))
    for fl in np.geomspace(1e6, 1e8, 3):  # compute-heavy vector ops (few bytes per flop)
        add("elementwise", OpFeatures(1, "vector.fp32", fl, fl, [("l2", fl / 50)]))
    for d in (1e6, 1e4, 1e2, 1.0):
        add("scatter", OpFeatures(1, "vector.fp32", 1e6, 1e6, [("l2", 1e5)], updates=1e6, distinct=d))
    return rows


def test_fit_recovers_known_parameters():
    base = _spec()
    res = fit(_rows(), base, loss="linear")
    assert res.unidentified == []
    assert set(res.curves) == {"level:l1", "level:l2", "level:dram", "unit:matrix.fp32", "unit:vector.fp32"}
    for group, (xs, rates) in res.curves.items():
        name = group.split(":", 1)[1]
        # knots under the dispatch rows (96 B, 8 FLOPs) or under memory-bound rows bind nothing:
    # check where the data binds
        floor = 1e6 if group.startswith("unit:") else 1e3
        bound = [r for x, r in zip(xs, rates, strict=True) if 10**x >= floor]
        assert np.allclose(bound, TRUE[name], rtol=0.05), (group, rates)
    assert res.dispatch_s == pytest.approx(TRUE["dispatch"], rel=0.02)
    assert res.update_rate == pytest.approx(TRUE["update"], rel=0.05)
    assert res.same_address_rate == pytest.approx(TRUE["same"], rel=0.05)
    pred = mirror_predict(_rows(), base, res)
    meas = np.array([r.measured_s for r in _rows()])
    assert np.max(np.abs(pred / meas - 1)) < 0.05


def test_fit_moves_away_from_a_wrong_start():
    """The base spec starts 2-5x off; the fit must not stay there (guards a no-op fit)."""
    base = _spec()
    res = fit(_rows(), base, loss="linear")
    assert res.curves["level:dram"][1][0] == pytest.approx(TRUE["dram"], rel=0.05)
    assert res.dispatch_s != pytest.approx(3e-6, rel=0.1)


def test_overhead_dominated_curve_is_not_fitted():
    """L1 ops far shorter than the dispatch overhead say nothing about L1 bandwidth."""
    base = _spec()
    rows = [RowFeatures(f"d{i}", "dispatch", 2e-6, [OpFeatures(1, "vector.fp32", 8.0, 8.0, [("l1", 96.0)])])
            for i in range(3)]
    rows += [RowFeatures(f"b{i}", "bandwidth", 2e-6 + b / 1e13, [OpFeatures(1, "vector.fp32", 1.0, 1.0, [("l1", b)])])
             for i, b in enumerate([1e3, 2e3, 4e3])]
    rows += [RowFeatures(f"m{i}", "bandwidth", 2e-6 + b / 2e10, [OpFeatures(1, "vector.fp32", 1.0, 1.0, [("dram", b)])])
             for i, b in enumerate([1e7, 1e8])]
    res = fit(rows, base, loss="linear")
    assert "level:l1" in res.unidentified
    assert "level:l1" not in res.curves
    assert res.curves["level:dram"][1][0] == pytest.approx(2e10, rel=0.05)
    spec, notes = apply_fit(base, res, "measured: x")
    assert spec.device.level("l1").bandwidth.value == base.device.level("l1").bandwidth.value
    assert any("level:l1" in n for n in notes)


def test_fitted_spec_round_trips_with_sources(tmp_path):
    base = _spec()
    res = fit(_rows(), base, loss="linear")
    spec, notes = apply_fit(base, res, "measured: fitted to X/measurements.csv (train split, 28 rows)")
    assert notes == []
    path = tmp_path / "hardware.yaml"
    write_yaml(spec, path)
    back = load(str(path))
    assert back.host.dispatch_overhead.value == pytest.approx(TRUE["dispatch"], rel=0.02)
    assert back.host.dispatch_overhead.source.startswith("measured: fitted")
    for lv in back.device.memory:
        # read where the synthetic rows bind (the curve's first knot may sit under dispatch rows)
        size = {"l1": 2e4, "l2": 3e5, "dram": 1e8}[lv.name]
        assert lv.bandwidth.value * lv.efficiency(size) == pytest.approx(TRUE[lv.name], rel=0.05)
        assert "measured: fitted" in lv.efficiency.source
    u = back.device.matrix["fp32"]
    assert u.peak.value >= TRUE["matrix.fp32"] * 0.95
    assert "measured: fitted" in back.device.atomics.update_rate.source


def _gpu_spec():
    from validation.specio import to_doc

    doc = to_doc(_spec())
    doc["id"] = "toy-gpu"
    doc["device"]["kind"] = "gpu"
    doc["host_link"] = {"name": "pcie", "kind": "pcie", "bandwidth": _q(6.4e10, "B/s"), "latency": _q(2e-6, "s"),
                        "efficiency": {"value": 0.8, "source": "test"}}
    return resolve(doc)


def test_gpu_terms_graph_node_and_link_are_recovered():
    """The CUDA-only parameters (graph replay per node, host link) from synthetic rows."""
    base = _gpu_spec()
    node, bw, lat = 8e-7, 2.2e10, 6e-6
    rows = []
    for i in range(4):  # tiny kernels: replay per node is the node cost
        rows.append(RowFeatures(f"g{i}", "graph", node, [OpFeatures(1, "vector.fp32", 8.0, 8.0, [("l2", 96.0)])]))
    for i, b in enumerate(np.geomspace(4e3, 6.4e7, 6)):
        rows.append(RowFeatures(f"t{i}", "transfer", lat + b / bw, [OpFeatures(1, "", 0.0, 0.0, link_bytes=b)]))
    for i, b in enumerate(np.geomspace(1e7, 1e9, 4)):  # device memory rows keep the rest identified
        f = OpFeatures(1, "vector.fp32", b / 16, b / 16, [("dram", b)])
        rows.append(RowFeatures(f"m{i}", "bandwidth", max(3e-6, 2e-7 + b / 2e10), [f]))
    res = fit(rows, base, loss="linear")
    assert res.graph_node_s == pytest.approx(node, rel=0.05)
    assert res.link_bw == pytest.approx(bw, rel=0.05)
    assert res.link_latency_s == pytest.approx(lat, rel=0.1)
    assert not res.serial_host
    spec, _ = apply_fit(base, res, "measured: y")
    link = spec.tiers[0].link
    assert link.bandwidth.value * link.efficiency.value == pytest.approx(bw, rel=0.05)
    assert spec.host.graph_node_cost.value == pytest.approx(node, rel=0.05)
