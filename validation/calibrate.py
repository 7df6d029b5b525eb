"""Calibration: measure, split, fit, write the spec, predict held-out rows, report.

``calibrate(device, out)`` leaves in ``out``: ``measurements.csv`` and ``meta.json`` (the
harness's store), ``hardware.yaml`` (a normal SystemSpec), ``fit.json`` (what the fit
used), ``predictions.csv`` (every row, predicted by the real cost model) and ``report.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from hw_models.catalog import SpecError, load
from hw_models.spec import SystemSpec

from . import compare
from .features import OpFeatures, PredictError, case_of, op_features, trace_case
from .fit import RowFeatures, fit
from .harness import run as harness_run
from .harness.store import Store, read_csv
from .machine import base_spec
from .predict import held_out, predict_frame
from .specio import apply_fit, write_yaml

STATS = ("median", "p10")


class CalibrationError(ValueError):
    user_facing = True


def training_rows(df: pd.DataFrame, base: SystemSpec, stat: str = "median") -> tuple[list[RowFeatures], list[str]]:
    rows, notes = [], []
    col = f"{stat}_s"
    for _, r in df.iterrows():
        if str(r.get("status")) != "ok" or held_out(r["case_id"], r["family"]):
            continue
        c = case_of(r)
        if c.family == "transfer":
            if not c.params.get("pinned"):
                continue  # the link in the spec is DMA from pinned memory; pageable copies are only reported
            # a host-device copy is priced by the link alone; nothing to trace
            feats = [OpFeatures(1, "", 0.0, 0.0, link_bytes=c.work()["bytes"])]
        else:
            try:
                feats = op_features(trace_case(c), base, cold=bool(c.params.get("cold")))
            except PredictError as e:
                notes.append(f"{r['case_id']}: not used in the fit ({e})")
                continue
        rows.append(RowFeatures(r["case_id"], r["family"], float(r[col]), feats))
    return rows, notes


def required_levels(fit_doc: dict[str, Any]) -> list[str]:
    return [g.split(":", 1)[1] for g in fit_doc.get("curves", {}) if g.startswith("level:")]


def check_spec_covers(df: pd.DataFrame, system: SystemSpec, meta: dict[str, Any], fit_doc: dict[str, Any]) -> None:
    """Refuse a spec that cannot describe these measurements (one line says what is missing)."""
    device = str(meta.get("device") or (df["device"].iloc[0] if len(df) else ""))
    want = "gpu" if device.startswith("cuda") else "cpu"
    if device and system.device.kind != want:
        raise CalibrationError(
            f"measurements are of a {device} device but spec {system.id!r} describes a {system.device.kind}"
        )
    have = {lv.name for lv in system.device.memory}
    for lvl in required_levels(fit_doc):
        if lvl not in have:
            raise CalibrationError(
                f"spec {system.id!r} has no memory level {lvl!r} that these measurements need "
                f"(it has: {', '.join(lv.name for lv in system.device.memory)})"
            )
    for dt in sorted(set(df.loc[df["status"] == "ok", "dtype"])):
        if dt not in system.device.vector and dt not in system.device.matrix:
            raise CalibrationError(f"spec {system.id!r} lists no compute unit for dtype {dt!r} that these rows use")


def _fit_doc(res, base: SystemSpec, stat: str, n_train: int, seconds: float) -> dict[str, Any]:
    return {
        "base": base.id,
        "stat": stat,
        "n_train": n_train,
        "loss": "soft_l1",
        "seconds": seconds,
        "curves": {g: {"log10_size": xs, "rate": rs} for g, (xs, rs) in res.curves.items()},
        "params": res.params_table(),
        "serial_host": res.serial_host,
    }


def calibrate(
    device: str,
    out: str | Path,
    *,
    mode: str = "quick",
    base: str | None = None,
    stat: str = "median",
    progress: Callable[[Any, Any], None] | None = None,
    measure: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Measure (resuming), fit on the training split and write the dataset directory."""
    if stat not in STATS:
        raise CalibrationError(f"--stat must be one of {', '.join(STATS)}")
    out = Path(out)
    if measure:
        harness_run(device, out, mode=mode, progress=progress, threads=threads)
    df = read_csv(out)
    meta = Store(out).read_meta()
    if threads is None and "threads" in df.columns and len(df):
        threads = int(df["threads"].iloc[0])  # refitting: the spec describes the threads measured
    base_sys = base_spec(device, base, threads=threads)
    t0 = time.perf_counter()
    rows, notes = training_rows(df, base_sys, stat)
    if len(rows) < 3:
        raise CalibrationError(f"{out}: only {len(rows)} usable training rows; measure more cases")
    res = fit(rows, base_sys)
    seconds = time.perf_counter() - t0
    rel = out.as_posix()
    source = f"measured: fitted to {rel}/measurements.csv (train split, {len(rows)} rows)"
    spec, more = apply_fit(base_sys, res, source)
    notes += more
    spec = spec.model_copy(update={"id": f"calibrated-{base_sys.id}", "description": f"Calibrated by roofsim "
                                   f"calibrate from {rel}/measurements.csv; base {base_sys.id}."})
    hw_path = out / "hardware.yaml"
    write_yaml(spec, hw_path, header=f"calibrated from {rel}/measurements.csv; every fitted number is sourced")
    spec = load(str(hw_path))  # what users will load: proves the file round-trips
    fit_doc = _fit_doc(res, base_sys, stat, len(rows), seconds)
    fit_doc["rows_total"] = int(len(df))
    (out / "fit.json").write_text(json.dumps(fit_doc, indent=2))
    pred = predict_frame(df, spec)
    pred.to_csv(out / "predictions.csv", index=False)
    held = pred[pred["held_out"]] if len(pred) else pred
    train = pred[~pred["held_out"]] if len(pred) else pred
    if meta.get("torch_threads") and meta.get("usable_cpus") and meta["torch_threads"] > meta["usable_cpus"]:
        notes.append("torch uses more threads than usable CPUs: timings include oversubscription")
    skipped = df[df["status"] != "ok"]
    for r in skipped.itertuples():
        notes.append(f"{r.case_id}: {r.status}")
    text = compare.report_markdown(
        title=f"Calibration of {meta.get('device_name', device)}",
        meta=meta,
        pred=held,
        train_pred=train,
        params=res.params_table(),
        notes=notes,
        fit_info=fit_doc,
    )
    (out / "report.md").write_text(text)
    summary = compare.error_summary(held)
    return {"summary": summary, "hardware": str(hw_path), "report": str(out / "report.md"), "n_train": len(rows)}


def validate(measurements: str | Path, hardware: str | None = None) -> dict[str, Any]:
    """Predict every held-out row of a dataset with ``hardware`` (default: its hardware.yaml)."""
    d = Path(measurements)
    df = read_csv(d)
    store = Store(d if d.is_dir() else d.parent)
    meta = store.read_meta()
    fit_path = store.dir / "fit.json"
    fit_doc: dict[str, Any] = {}
    if fit_path.exists():
        try:
            fit_doc = json.loads(fit_path.read_text())
        except json.JSONDecodeError:
            raise CalibrationError(f"{fit_path}: not valid JSON") from None
    if hardware is None:
        hw = store.dir / "hardware.yaml"
        if not hw.exists():
            raise CalibrationError(f"{store.dir} has no hardware.yaml; pass --hardware SPEC")
        hardware = str(hw)
    try:
        system = load(hardware)
    except SpecError:
        raise
    check_spec_covers(df, system, meta, fit_doc)
    pred = predict_frame(df, system, only_held_out=True)
    summary = compare.error_summary(pred)
    summary["hardware"] = system.id
    summary["measurements"] = str(store.dir)
    rows = pred.replace({math.nan: None}).to_dict("records") if len(pred) else []
    summary["rows"] = rows
    return summary
