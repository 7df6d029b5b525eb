"""The fit: one model (no mirror), honest guards, and a spec that predicts what the fit saw.

Synthetic datasets are harness cases "measured" by the shipped cost model under a known
spec (``TRUE``); the fit starts from another spec and must find the known numbers. One
row's time is also written out by hand, so the model the truth comes from is itself
checked against physics typed independently of it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hw_models.catalog import load, resolve
from simulator.params import Params
from validation.calibrate import fit_dataset, validate
from validation.fit import MIN_KIND_ROWS, ROWS_PER_KNOT, Objective, Slot, fit, kind_groups, training_mask
from validation.harness.cases import Case
from validation.harness.store import COLUMNS, Store
from validation.predict import predict_frame, row_times
from validation.rows import build_rowset, traced_rows
from validation.specio import apply_fit


def _q(v, unit=""):
    return {"value": f"{v} {unit}".strip(), "source": "test"}


def _eff(value):
    return {"value": value, "source": "test"}


def _spec_doc(l2=2e11, dram=4e10, vec=1e11, dispatch=3e-6, exp_rate=None, peak=1e11):
    def lv(name, cap, bw):
        return {"name": name, "capacity": _q(cap, "B"), "bandwidth": _q(bw, "B/s"), "latency": _q(1e-9, "s"),
                "efficiency": _eff(1.0), "persistent": {"value": True, "source": "test"}}

    vector = {"fp32": {"peak": _q(peak, "FLOP/s"), "efficiency": _eff(vec / peak)}}
    if exp_rate:
        vector["fp32"]["kind_efficiency"] = {"elementwise.exp": _eff(exp_rate / peak)}
    return {
        "id": "toy-cpu", "name": "toy",
        "host": {"name": "h", "cores": _q(1), "dispatch_overhead": _q(dispatch, "s"), "graph_launch": _q(1e-5, "s"),
                 "library_call": _q(1e-6, "s"),
                 "graph_node_cost": _q(1e-6, "s"), "memory_capacity": _q(2**34, "B"),
                 "memory_bandwidth": _q(1e10, "B/s"), "memory_latency": _q(1e-7, "s")},
        "device": {"name": "toy", "kind": "cpu", "compute_units": _q(1), "kernel_latency": _q(2e-7, "s"),
                   "tiles": {"shapes": [[16, 16]], "split_k": False, "source": "test"},
                   "overlap": _q(64), "serial_dispatch": {"value": True, "source": "test"},
                   "matrix": {"fp32": {"peak": _q(peak, "FLOP/s"), "efficiency": _eff(0.5)}},
                   "vector": vector,
                   "memory": [lv("l2", 2**20, 4e11), lv("dram", 2**34, 8e10)],
                   "atomics": {"update_rate": _q(1e9, "/s"), "same_address_rate": _q(1e8, "/s")}},
    }


def _system(**kw):
    doc = _spec_doc(**kw)
    s = resolve(doc)
    # efficiencies set the effective rates: level l2 at 2e11 of 4e11, dram at 4e10 of 8e10
    s.device.level("l2").efficiency = s.device.level("l2").efficiency.model_copy(update={"points": [(1.0, kw.get("l2", 2e11) / 4e11)]})
    s.device.level("dram").efficiency = s.device.level("dram").efficiency.model_copy(update={"points": [(1.0, kw.get("dram", 4e10) / 8e10)]})
    return s


TRUE = _system(l2=2e11, dram=4e10, vec=2e10, dispatch=1e-6, exp_rate=1e9)


def _cases() -> list[Case]:
    out = [Case("dispatch", "add", {"n": 8}) for _ in range(1)]
    out += [Case("dispatch", op, {"n": 8}) for op in ("relu", "neg", "mul")]
    for n in (2**12, 2**13, 2**14, 2**15, 2**16):  # l2-resident
        out.append(Case("bandwidth", "copy", {"n": n}))
    for n in (2**20, 2**21, 2**22, 2**23, 2**24, 2**25):  # dram
        out.append(Case("bandwidth", "copy", {"n": n}))
    for n in (2**14, 2**16, 2**18, 2**20, 2**22):
        out.append(Case("elementwise", "exp", {"n": n}))
        out.append(Case("elementwise", "gelu", {"n": n}))
    for d in (4096, 256, 16, 1):
        out.append(Case("scatter", "index_add", {"updates": 4096, "targets": 4096, "width": 8, "distinct": d}))
    return out


def _frame(cases, system, noisy=()) -> pd.DataFrame:
    rows = []
    for c in cases:
        rows.append({"case_id": c.id, "family": c.family, "kind": c.kind, "op": c.op, "shape": c.shape_json(),
                     "dtype": c.dtype, "params": json.dumps(c.params) if c.params else "", "device": "cpu",
                     "status": "ok", "median_s": 1.0, "p10_s": 1.0, "p90_s": 1.0, **c.work()})
    df = pd.DataFrame(rows)
    traced, _ = traced_rows(df)
    t = row_times(build_rowset(traced, system), Params(system))
    df["median_s"] = t
    df["p10_s"] = t * 0.98
    df["p90_s"] = t * 1.02
    for cid in noisy:
        df.loc[df["case_id"] == cid, "p90_s"] *= 2.0
    return df


@pytest.fixture(scope="module")
def data():
    return _frame(_cases(), TRUE)


def _fit(df, base):
    traced, notes = traced_rows(df)
    rs = build_rowset(traced, base, None, notes)
    return rs, traced, fit(rs, traced, base, loss="linear")


def test_the_truth_is_the_physics_written_out():
    """A DRAM copy on the serial toy CPU: dispatch + kernel latency + bytes / DRAM rate."""
    c = Case("bandwidth", "copy", {"n": 2**24})
    df = _frame([c], TRUE)
    nbytes = 2 * 4 * 2**24
    assert df["median_s"].iloc[0] == pytest.approx(1e-6 + 2e-7 + nbytes / 4e10, rel=1e-9)


def test_fit_recovers_known_rates_from_a_wrong_start(data):
    base = _system(l2=5e10, dram=1e10, vec=5e9, dispatch=1e-5)
    rs, traced, res = _fit(data, base)
    p = res.objective.params(res.theta)
    # on a serial CPU a bare op costs dispatch + kernel latency: only their sum is in the data
    assert p.scalar("host.op_dispatch") + p.scalar("kernel_latency") == pytest.approx(1.2e-6, rel=0.02)
    assert float(p.rate("level:dram", 1e8)) == pytest.approx(4e10, rel=0.05)
    assert float(p.rate("level:l2", 2e5)) == pytest.approx(2e11, rel=0.1)
    assert float(p.rate("unit:vector.fp32@elementwise.exp", 1e6)) == pytest.approx(1e9, rel=0.05)
    assert p.scalar("atomics.same_address_rate") == pytest.approx(1e8, rel=0.05)
    err = np.abs(res.objective.predict(res.theta) / rs.rows["measured_s"].to_numpy() - 1)
    known = ~rs.rows["case_id"].str.startswith("elementwise/gelu").to_numpy()  # every gelu family is held out
    assert np.max(err[known]) < 0.05


def test_no_curve_gets_more_knots_than_a_third_of_its_rows(data):
    _, _, res = _fit(data, _system())
    curves = [s for s in res.objective.slots if s.knots is not None]
    assert curves
    for s in curves:
        assert s.rows >= ROWS_PER_KNOT and len(s.knots) <= s.rows // ROWS_PER_KNOT, (s.key, s.knots, s.rows)


def test_a_rate_the_data_put_above_the_peak_stays_at_the_peak_and_is_reported(data):
    # the base says DRAM peaks at 2e10 B/s; the data move 4e10 B/s: a model error, not a new peak
    base = _system(dram=1e10)
    base.device.level("dram").bandwidth = base.device.level("dram").bandwidth.model_copy(update={"value": 2e10})
    _, _, res = _fit(data, base)
    assert "level:dram" in res.at_peak
    p = res.objective.params(res.theta)
    assert float(p.rate("level:dram", 1e8)) <= 2e10 * (1 + 1e-9)
    spec, notes = apply_fit(base, res, "measured: toy")
    assert spec.device.level("dram").bandwidth.value == 2e10
    assert any("level:dram" in n and "model error" in n for n in notes)


def test_every_rewritten_number_names_the_dataset_and_the_fit(tmp_path, data):
    _write_dataset(tmp_path, data)
    out = fit_dataset(tmp_path, _system())
    spec = load(out["hardware"])
    fitted = out["fit"].values
    assert fitted
    src = f"{tmp_path.as_posix()}/measurements.csv"
    for key in fitted:
        source = _source_of(spec, key)
        assert src in source and "fitted" in source, (key, source)


def _source_of(spec, key: str) -> str:
    kind, _, name = key.partition(":")
    if kind == "level":
        return spec.device.level(name).efficiency.source
    if kind == "unit":
        label, _, k = name.partition("@")
        table, _, dt = label.partition(".")
        u = (spec.device.matrix if table == "matrix" else spec.device.vector)[dt]
        return (u.kind_efficiency[k] if k else u.efficiency).source
    return {"host.op_dispatch": spec.host.op_dispatch, "host.dispatch": spec.host.dispatch_overhead,
            "kernel_latency": spec.device.kernel_latency, "overlap": spec.device.overlap,
            "atomics.update_rate": spec.device.atomics.update_rate,
            "atomics.same_address_rate": spec.device.atomics.same_address_rate}[key].source


def _write_dataset(path, df):
    store = Store(path)
    for r in df.to_dict("records"):
        store.append({k: r.get(k, "") for k in COLUMNS if k in r})
    store.write_meta({"device": "cpu", "device_name": "toy"})


def test_the_written_spec_predicts_exactly_what_the_fit_vector_does(tmp_path, data):
    """No mirror: the objective at the vector read back from hardware.yaml equals validate's predictions."""
    _write_dataset(tmp_path, data)
    out = fit_dataset(tmp_path, _system())
    spec = load(out["hardware"])
    obj = out["fit"].objective
    pred = predict_frame(data, spec)
    via_fit = pd.Series(obj.predict(obj.theta_of(spec)), index=obj.rs.rows["case_id"])
    # knot sizes are written to 6 digits, so interpolation between them agrees to ~1e-10, not bit for bit
    np.testing.assert_allclose(pred.set_index("case_id")["predicted_s"].loc[via_fit.index], via_fit, rtol=1e-8)
    # and the held-out summary validate prints comes from the same numbers
    s = validate(tmp_path)
    held = pred[pred["held_out"]]
    assert s["n"] == len(held)


def test_a_curve_no_row_depends_on_is_held_not_fitted():
    """A tiny l2 copy far under the dispatch overhead says nothing about L2 bandwidth."""
    cases = [Case("dispatch", op, {"n": 8}) for op in ("add", "relu", "neg", "mul")]
    cases += [Case("bandwidth", "copy", {"n": n}) for n in (2**20, 2**21, 2**22, 2**23)]
    slow_host = _system(dispatch=5e-4)
    df = _frame(cases, slow_host)
    _, _, res = _fit(df, _system())
    assert "level:l2" in res.unidentified
    assert "level:l2" not in res.values


def test_noisy_rows_are_not_fitted(data):
    noisy = data["case_id"].iloc[8]
    df = _frame(_cases(), TRUE, noisy=[noisy])
    traced, notes = traced_rows(df)
    rs = build_rowset(traced, TRUE, None, notes)
    train = training_mask(rs)
    assert not train[list(rs.rows["case_id"]).index(noisy)]


def test_kind_curves_need_enough_training_rows(data):
    traced, notes = traced_rows(data)
    rs = build_rowset(traced, TRUE, None, notes)
    train = np.ones(rs.n, dtype=bool)
    groups = kind_groups(rs, train)
    assert "elementwise.exp" in groups["vector.fp32"] and "elementwise.gelu" in groups["vector.fp32"]
    few = np.array([c.startswith("elementwise/exp") for c in rs.rows["case_id"]])
    few[np.flatnonzero(few)[MIN_KIND_ROWS - 1:]] = False
    assert "elementwise.exp" not in kind_groups(rs, few).get("vector.fp32", frozenset())


def test_objective_vector_round_trips_through_params():
    rs = build_rowset(traced_rows(_frame(_cases()[:6], TRUE))[0], TRUE)
    slots = [Slot("host.op_dispatch", None, np.array([-30.0]), np.array([0.0]), 4),
             Slot("level:dram", [6.0, 8.0], np.full(2, 10.0), np.full(2, 30.0), 6)]
    obj = Objective(rs, TRUE, slots)
    theta = obj.theta_of(TRUE)
    assert np.exp(theta[0]) == pytest.approx(1e-6)
    assert np.exp(theta[1:]) == pytest.approx([4e10, 4e10])
    np.testing.assert_allclose(obj.predict(theta), row_times(rs, Params(TRUE)), rtol=1e-12)
