"""Every committed dataset: the fit's own vector and ``validate`` predict the same numbers.

There is no mirror of the cost model to drift: ``fit.json`` records the parameter vector
the fit ended with (keys, knots, values, the per-kind curves it priced with), and the
fit's objective rebuilt from it must predict every row exactly as ``validate`` does with
the dataset's ``hardware.yaml``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from hw_models.catalog import load
from validation.calibrate import load_dataset
from validation.fit import Objective, Slot
from validation.predict import predict_frame
from validation.rows import build_rowset, traced_rows

DATA = Path(__file__).resolve().parents[2] / "validation" / "data"
DATASETS = sorted(p.name for p in DATA.iterdir() if (p / "fit.json").exists())


def test_there_are_cpu_and_public_gpu_datasets():
    assert any(d.startswith("cpu-") for d in DATASETS)
    assert {"vidur-a100", "vidur-h100", "vidur-a40"} <= set(DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_fit_vector_and_validate_agree(name):
    d = DATA / name
    df, _store, _meta, fit_doc = load_dataset(d)
    spec = load(str(d / "hardware.yaml"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = predict_frame(df, spec).set_index("case_id")
        traced, notes = traced_rows(df)
    kinds = {u: frozenset(k) for u, k in fit_doc["kind_curves"].items()}
    rs = build_rowset(traced, spec, kinds, notes)
    slots = [Slot(s["key"], s["knots"], np.zeros(len(s["log_value"])), np.zeros(len(s["log_value"])), s["rows"],
                  fixed=not s["free"]) for s in fit_doc["slots"]]
    obj = Objective(rs, spec, slots)
    theta = np.concatenate([np.asarray(s["log_value"], dtype=float) for s in fit_doc["slots"]])
    via_fit = obj.predict(theta)
    np.testing.assert_allclose(pred.loc[rs.rows["case_id"], "predicted_s"].to_numpy(), via_fit, rtol=1e-8)
    # the per-kind curves the fit priced with are the ones the spec carries
    for label, keys in kinds.items():
        table, _, dt = label.partition(".")
        unit = (spec.device.matrix if table == "matrix" else spec.device.vector)[dt]
        assert set(unit.kind_efficiency) == set(keys), label


@pytest.mark.parametrize("name", [n for n in DATASETS if n.startswith("vidur-")])
def test_public_datasets_carry_provenance(name):
    d = DATA / name
    meta = json.loads((d / "meta.json").read_text())
    src = meta["source"]
    assert src["repository"] == "https://github.com/microsoft/vidur" and len(src["commit"]) == 40
    assert src["licence"] == "MIT" and (d / "LICENSE-vidur").read_text().startswith("    MIT License")
    df, *_ = load_dataset(d)
    assert set(df["timing"]) == {"device"}
    assert df["source"].str.startswith("microsoft/vidur:data/profiling/").all()
    # the held-out split is by model: no model has rows on both sides
    from validation.holdout import held_out

    sides = df.assign(h=[held_out(r) for r in df.to_dict("records")], m=[json.loads(p).get("model", "") for p in df["params"]])
    per_model = sides[sides["m"] != ""].groupby("m")["h"].nunique()
    assert (per_model == 1).all()
    assert sides["h"].any() and (~sides["h"]).any()


@pytest.mark.parametrize("gpu, cal", [("a100", "a100-80gb-cal"), ("h100", "h100-sxm-cal"), ("a40", "a40-cal")])
def test_calibrated_catalog_systems_carry_the_fitted_numbers(gpu, cal):
    spec = load(cal)
    fitted = load(str(DATA / f"vidur-{gpu}" / "hardware.yaml"))
    assert spec.device.kernel_latency.value == pytest.approx(fitted.device.kernel_latency.value)
    assert spec.device.matrix["fp16"].kind_efficiency == fitted.device.matrix["fp16"].kind_efficiency
    assert f"validation/data/vidur-{gpu}" in spec.device.kernel_latency.source
    # bf16 takes the fp16 tensor-core curves (same units at the same datasheet rate)
    assert spec.device.matrix["bf16"].kind_efficiency["matmul"].points == \
        fitted.device.matrix["fp16"].kind_efficiency["matmul"].points


def test_a_cold_gpu_row_is_one_call_from_idle_host_then_kernel():
    # the harness times a cold row as one call after a flush and a sync: the host's path
    # (bare dispatch + the library's call path) and then the kernel, in series; its warm
    # twin is a loop in which the host's issue hides the kernel
    from simulator.costmodel import evaluate
    from simulator.params import Params
    from validation.predict import row_times
    from validation.rows import timing_of

    df, *_ = load_dataset(DATA / "h200-20261129")
    df = df[df["case_id"].isin(["gemv/linear/fp32/n4096xk4096/cold=True", "gemv/linear/fp32/n4096xk4096"])]
    spec = load("h200-cal")
    traced, _ = traced_rows(df)
    rs = build_rowset(traced, spec)
    assert sorted(rs.rows["timing"]) == ["loop", "once"]
    assert [timing_of(r) for _, r in df.iterrows()] == ["loop", "once"]
    p = Params(spec)
    host = p.scalar("host.op_dispatch") + p.scalar("host.library_call")
    dur = np.bincount(rs.op_row, weights=evaluate(rs.table, p).time[rs.op_term], minlength=rs.n)
    got = dict(zip(rs.rows["timing"], row_times(rs, p), strict=True))
    i = {t: k for k, t in enumerate(rs.rows["timing"])}
    assert got["once"] == pytest.approx(host + dur[i["once"]], rel=1e-9)
    assert got["loop"] == pytest.approx(max(host, dur[i["loop"]]), rel=1e-9)
