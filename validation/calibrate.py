"""Calibration: measure, split, fit, write the spec, predict held-out rows, report.

``calibrate(device, out)`` measures this machine (resuming) and calls ``fit_dataset``,
which leaves in ``out``: ``hardware.yaml`` (a normal SystemSpec), ``fit.json`` (the
parameter vector: keys, knots, values, which rows it rests on), ``predictions.csv``
(every row, predicted by the one cost model) and ``report.md``, beside the store's
``measurements.csv`` and ``meta.json``. Public datasets (``validation/data/``) are fitted
with the same ``fit_dataset`` from a catalog base spec.

One statistic throughout: a row's median over its repeats, for the fit and for every
error figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw_models.catalog import SpecError, load
from hw_models.spec import SystemSpec

from . import compare
from .fit import FitResult, fit
from .harness import run as harness_run
from .harness.store import Store, read_csv
from .harness.timing import NOISY_SPREAD
from .machine import base_spec
from .predict import predict_frame
from .rows import build_rowset, traced_rows
from .specio import apply_fit, write_yaml


class CalibrationError(ValueError):
    user_facing = True


def required_levels(fit_doc: dict[str, Any]) -> list[str]:
    return [s["key"].split(":", 1)[1] for s in fit_doc.get("slots", []) if s["key"].startswith("level:")]


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


def fit_dataset(out: str | Path, base_sys: SystemSpec, *, system_id: str | None = None, name: str | None = None,
                description: str | None = None, title: str | None = None) -> dict[str, Any]:
    """Fit ``base_sys`` to the dataset in ``out`` and write the spec, fit, predictions and report there."""
    out = Path(out)
    df = read_csv(out)
    meta = Store(out).read_meta()
    traced, notes = traced_rows(df)
    rs = build_rowset(traced, base_sys, None, notes)
    res = fit(rs, traced, base_sys)
    rel = out.as_posix()
    source = f"measured: fitted to {rel}/measurements.csv by roofsim calibrate ({res.n_rows} training rows, median statistic)"
    spec, more = apply_fit(base_sys, res, source)
    update = {"id": system_id or f"calibrated-{base_sys.id}",
              "description": description or f"Calibrated by roofsim calibrate from {rel}/measurements.csv; base {base_sys.id}."}
    if name:
        update["name"] = name
    spec = spec.model_copy(update=update)
    hw_path = out / "hardware.yaml"
    write_yaml(spec, hw_path, header=f"calibrated from {rel}/measurements.csv; every fitted number is sourced")
    spec = load(str(hw_path))  # what users will load: proves the file round-trips
    fit_doc = _fit_doc(res, base_sys, spec, len(df))
    (out / "fit.json").write_text(json.dumps(fit_doc, indent=2))
    pred = predict_frame(df, spec)
    pred.to_csv(out / "predictions.csv", index=False)
    held = pred[pred["held_out"]] if len(pred) else pred
    train = pred[~pred["held_out"]] if len(pred) else pred
    if meta.get("torch_threads") and meta.get("usable_cpus") and meta["torch_threads"] > meta["usable_cpus"]:
        more.append("torch uses more threads than usable CPUs: timings include oversubscription")
    for r in df[df["status"] != "ok"].itertuples():
        more.append(f"{r.case_id}: {r.status}")
    text = compare.report_markdown(title=title or f"Calibration of {meta.get('device_name', base_sys.name)}",
                                   meta=meta, pred=held, train_pred=train, params=res.params_table(),
                                   notes=more, fit_info=fit_doc)
    (out / "report.md").write_text(text)
    return {"summary": compare.error_summary(held, meta.get("resolution_s")), "hardware": str(hw_path),
            "report": str(out / "report.md"),
            "n_train": res.n_rows, "fit": res}


def _fit_doc(res: FitResult, base: SystemSpec, spec: SystemSpec, rows_total: int) -> dict[str, Any]:
    doc = res.to_doc()
    # the vector as the written spec holds it (after rounding to YAML), so fit.json and
    # hardware.yaml are the same numbers
    written = res.objective.theta_of(spec)
    for s in doc["slots"]:
        s["log_value"] = written[res.objective.index[s["key"]]].tolist()
    return {"base": base.id, "statistic": "median", "loss": "soft_l1", "rows_total": int(rows_total), **doc}


def calibrate(
    device: str,
    out: str | Path,
    *,
    mode: str = "quick",
    base: str | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    measure: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Measure (resuming), fit on the training split and write the dataset directory.

    One writer per dataset: the store's lock is held from the first measurement to the
    last file written. A ``base`` spec of another device kind is refused before measuring.
    """
    out = Path(out)
    want = "gpu" if device.startswith("cuda") else "cpu"
    if base:
        given = load(base)
        if given.device.kind != want:
            raise CalibrationError(f"--base {base}: spec {given.id!r} describes a {given.device.kind}, but "
                                   f"--device {device} measures a {want}; give a {want} spec")
    store = Store(out)
    if not measure:
        read_csv(out, warn=None)  # nothing to refit: say so before creating anything
    with store.lock():
        if measure:
            harness_run(device, out, mode=mode, progress=progress, threads=threads)
        df = read_csv(out)
        if threads is None and "threads" in df.columns and len(df):
            threads = int(df["threads"].iloc[0])  # refitting: the spec describes the threads measured
        base_sys = base_spec(device, base, threads=threads)
        check_spec_covers(df, base_sys, store.read_meta(), {})
        return fit_dataset(out, base_sys)


def load_dataset(measurements: str | Path) -> tuple[pd.DataFrame, Store, dict[str, Any], dict[str, Any]]:
    """(rows, store, meta, fit.json) of a dataset directory or measurements.csv path."""
    d = Path(measurements)
    df = read_csv(d)
    store = Store(d if d.is_dir() else d.parent)
    meta = store.read_meta()
    fit_path = store.dir / "fit.json"
    fit_doc: dict[str, Any] = {}
    if fit_path.exists():
        try:
            fit_doc = json.loads(fit_path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise CalibrationError(f"{fit_path}: not UTF-8 text (byte {e.start})") from None
        except (OSError, json.JSONDecodeError, RecursionError):
            raise CalibrationError(f"{fit_path}: not valid JSON") from None
        slots = fit_doc.get("slots", []) if isinstance(fit_doc, dict) else None
        if not isinstance(slots, list) or not all(isinstance(x, dict) and isinstance(x.get("key"), str) for x in slots):
            raise CalibrationError(f"{fit_path}: not a roofsim fit (expected an object whose 'slots' list "
                                   "holds {{\"key\": ...}} entries); delete it or rerun roofsim calibrate --no-measure")
    return df, store, meta, fit_doc


def validate(measurements: str | Path, hardware: str | None = None) -> dict[str, Any]:
    """Predict every held-out row of a dataset with ``hardware`` (default: its hardware.yaml)."""
    df, store, meta, fit_doc = load_dataset(measurements)
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
    if not (df["status"] == "ok").any():
        raise CalibrationError(f"{store.dir}: no measured rows (status ok) to validate")
    pred = predict_frame(df, system, only_held_out=True)
    if not len(pred):
        raise CalibrationError(f"{store.dir}: no held-out rows to validate ({int((df['status'] == 'ok').sum())} "
                               "measured rows, all in the training split)")
    if not pred["predicted_s"].notna().any():
        first = pred.loc[pred["note"].astype(str) != "", "note"]
        why = f" (first: {pred['case_id'].iloc[0]}: {first.iloc[0]})" if len(first) else ""
        raise CalibrationError(f"{store.dir}: none of the {len(pred)} held-out rows could be predicted{why}")
    summary = compare.error_summary(pred, meta.get("resolution_s"))
    summary["hardware"] = system.id
    summary["measurements"] = str(store.dir)
    summary["rows"] = pred.replace({math.nan: None}).to_dict("records") if len(pred) else []
    summary["noisy"] = int(np.sum(pred["spread"] > NOISY_SPREAD)) if len(pred) else 0
    return summary
