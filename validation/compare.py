"""Error statistics of predictions against measurements, and the calibration report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def _stats(ape: np.ndarray) -> dict[str, Any]:
    ape = ape[np.isfinite(ape)]
    if len(ape) == 0:
        return {"n": 0, "median_ape": None, "p90_ape": None, "within_10pct": None, "within_15pct": None}
    return {
        "n": int(len(ape)),
        "median_ape": float(np.median(ape)),
        "p90_ape": float(np.percentile(ape, 90)),
        "within_10pct": float(np.mean(ape <= 0.10)),
        "within_15pct": float(np.mean(ape <= 0.15)),
    }


#: a row is resolved when its time is at least this many timer ticks: quantisation then
#: costs at most 1/(2 x RESOLVED_TICKS) = 5% of it
RESOLVED_TICKS = 10


def error_summary(pred: pd.DataFrame, resolution_s: float | None = None) -> dict[str, Any]:
    """JSON-ready summary of held-out rows: overall, kernels only, and per op kind.

    Keys: ``n``, ``median_ape``, ``p90_ape``, ``within_10pct`` and ``within_15pct``
    (fractions), ``by_kind``, with a timer ``resolution_s`` also ``resolved`` (the same
    over rows at least ``RESOLVED_TICKS`` ticks long),
    plus ``kernels`` (everything but whole-model steps) and ``unpredicted`` (rows the
    model could not price, with the reason).
    """
    if len(pred) == 0:
        out = _stats(np.array([]))
        return {**out, "by_kind": {}, "kernels": out, "unpredicted": []}
    ok = pred[np.isfinite(pred["predicted_s"])]
    out = _stats(ok["ape"].to_numpy())
    out["by_kind"] = {k: _stats(g["ape"].to_numpy()) for k, g in ok.groupby("kind", sort=True)}
    out["kernels"] = _stats(ok.loc[ok["family"] != "model", "ape"].to_numpy())
    if resolution_s:
        # a figure a few timer ticks long carries up to half a tick of rounding: judged apart
        res = ok[ok["measured_s"] >= RESOLVED_TICKS * resolution_s]
        out["resolved"] = {**_stats(res["ape"].to_numpy()), "resolution_s": resolution_s,
                           "by_kind": {k: _stats(g["ape"].to_numpy()) for k, g in res.groupby("kind", sort=True)}}
    bad = pred[~np.isfinite(pred["predicted_s"])]
    out["unpredicted"] = [{"case_id": r.case_id, "reason": r.note} for r in bad.itertuples()]
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def error_table(summary: dict[str, Any]) -> list[list[Any]]:
    def row(name: str, s: dict[str, Any]) -> list[Any]:
        return [name, s["n"], _pct(s["median_ape"]), _pct(s["p90_ape"]), _pct(s["within_10pct"]),
                _pct(s.get("within_15pct"))]

    rows = [row(k, s) for k, s in summary["by_kind"].items()]
    rows.append(row("all kernels", summary["kernels"]))
    rows.append(row("overall", summary))
    return rows


TABLE_HEADERS = ["kind", "n", "median |err|", "p90 |err|", "within ±10%", "within ±15%"]


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github")


def _resolved_section(held: dict[str, Any]) -> list[str]:
    r = held.get("resolved")
    if not r:
        return []
    tick = r["resolution_s"]
    return [f"Rows at least {RESOLVED_TICKS} timer ticks long (the source rounds to {tick * 1e6:g} us):", "",
            markdown_table(TABLE_HEADERS, error_table({**r, "kernels": r})[:-1]), ""]


def report_markdown(
    *,
    title: str,
    meta: dict[str, Any],
    pred: pd.DataFrame,
    train_pred: pd.DataFrame,
    params: list[dict[str, Any]],
    notes: list[str],
    fit_info: dict[str, Any],
) -> str:
    held = error_summary(pred, meta.get("resolution_s"))
    train = error_summary(train_pred)
    lines = [f"# {title}", ""]
    lines += [
        f"- device: {meta.get('device_name', meta.get('device'))} ({meta.get('device')}), "
        f"{meta.get('torch_threads')} torch threads, {meta.get('usable_cpus')} usable CPUs",
        f"- torch {meta.get('torch')}, measured {meta.get('date')} on host `{meta.get('host')}`",
        f"- rows: {fit_info.get('rows_total')} measured, {fit_info.get('n_rows')} used to fit, "
        f"{held['n']} held-out predicted ({len(held['unpredicted'])} not predictable)",
        f"- fit: least squares on log time through the shipped cost model, {fit_info.get('loss')} loss, "
        f"statistic `{fit_info.get('statistic')}`, {fit_info.get('seconds', 0):.1f} s; hold-out by shape family "
        "or model, chosen before fitting",
        "",
        "## Held-out error (predicted by the real cost model with the fitted spec)",
        "",
        markdown_table(TABLE_HEADERS, error_table(held)),
        "",
        *_resolved_section(held),
        "## Training-split error (same predictor)",
        "",
        markdown_table(TABLE_HEADERS, error_table(train)),
        "",
    ]
    model_rows = pred[pred["family"] == "model"] if len(pred) else pred
    if len(model_rows):
        lines += ["## Whole-model steps", ""]
        rows = []
        for r in model_rows.itertuples():
            rows.append([r.case_id, f"{r.measured_s * 1e3:.2f} ms",
                         "n/a" if not np.isfinite(r.predicted_s) else f"{r.predicted_s * 1e3:.2f} ms",
                         "n/a" if not np.isfinite(r.predicted_s) else f"{100 * r.signed_err:+.1f}%", r.note])
        lines += [markdown_table(["case", "measured", "predicted", "error", "note"], rows), ""]
    if len(pred):
        worst = pred[np.isfinite(pred["predicted_s"])].sort_values("ape", ascending=False).head(10)
        lines += ["## Largest held-out misses", ""]
        rows = [[r.case_id, f"{r.measured_s * 1e6:.1f} us", f"{r.predicted_s * 1e6:.1f} us",
                 f"{100 * r.signed_err:+.1f}%", r.bound] for r in worst.itertuples()]
        lines += [markdown_table(["case", "measured", "predicted", "error", "bound"], rows), ""]
    lines += ["## Fitted parameters", ""]
    lines += [markdown_table(["parameter", "value", "unit"], [[p["parameter"], f"{p['value']:.4g}", p["unit"]]
                                                              for p in params]), ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
