"""The sections of ``roofsim report`` that are built from given tables: the roofline of
an analysed step, measured kernels against predictions, the throughput frontier of a
planner sweep, and the notes and sentences a run adds to the page.

Nothing here traces, simulates, predicts or plans: ``roofsim.reporting`` runs those
stages and hands their tables to these functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from . import figures, html
from .accuracy_plot import error_by_kind, plot_error_by_kind, plot_pred_vs_measured, with_errors
from .frontier_plot import plot_frontier
from .report import ReportError, Section
from .roofline_plot import plot_roofline

ROOFLINE_CAPTION = (
    "Hierarchical roofline: one sloped ceiling per memory level and one flat ceiling per dtype peak of the matrix "
    "and vector units; each op is a point at its arithmetic intensity and attained FLOP/s (alone, without host or "
    "contention), sized by its share of the op time and coloured by kind. Ops with no FLOPs sit on the bottom edge.")


def roofline_section(df: pd.DataFrame, system, out_dir: Path, title: str, measured: pd.DataFrame | None = None):
    """The roofline chart of one run from its analysed op table (``simulator.roofline.analyze``):
    writes ops.csv, roofline.png/.svg and roofline.json."""
    df.to_csv(out_dir / "ops.csv", index=False)
    shown = df if measured is None or measured.empty else pd.concat([df, measured], ignore_index=True)
    stats = plot_roofline(shown, system, out_dir / "roofline.png", title=title)
    plot_roofline(shown, system, out_dir / "roofline.svg", title=title)
    stats = {k: v for k, v in stats.items() if k != "path"}
    (out_dir / "roofline.json").write_text(json.dumps(stats, indent=2))
    caption = ROOFLINE_CAPTION
    if measured is not None and len(measured):
        caption += f" Measured kernels ({len(measured)}) are overlaid as 'measured' points."
    return figures.from_files("roofline", title, out_dir / "roofline.png", out_dir / "roofline.svg", caption)


# -- measurements ---------------------------------------------------------------------------------------------


def measured_points(pvm: pd.DataFrame) -> pd.DataFrame:
    """Measured kernels as roofline rows (kind 'measured'): intensity and attained FLOP/s from the measurement."""
    m = pvm[(pvm.get("flops", 0) > 0) & (pvm.get("bytes", 0) > 0)] if {"flops", "bytes"} <= set(pvm.columns) else pvm.iloc[0:0]
    return pd.DataFrame({"id": -1 - pd.RangeIndex(len(m)), "name": m.get("op", "measured"), "kind": "measured",
                         "flops": m["flops"].to_numpy(float) if len(m) else [], "bytes": m["bytes"].to_numpy(float) if len(m) else [],
                         "intensity": (m["flops"] / m["bytes"]).to_numpy(float) if len(m) else [],
                         "time_s": m["measured_s"].to_numpy(float) if len(m) else []})


def accuracy_section(pvm: pd.DataFrame, out: Path, source: str, system=None) -> dict[str, Any]:
    pvm.to_csv(out / "predicted_vs_measured.csv", index=False)
    table = error_by_kind(pvm)
    table.to_csv(out / "error_by_kind.csv", index=False)
    figs = [
        figures.save(plot_pred_vs_measured(pvm, f"Predicted against measured kernels ({source})"), out, "predicted_vs_measured",
                     caption="Each measured case at (measured, predicted) time on log axes; the diagonal is a perfect "
                             "prediction and the grey band ±10%. Points above the band are over-predicted."),
        figures.save(plot_error_by_kind(table, f"Prediction error by op kind ({source})"), out, "error_by_kind",
                     caption="Median absolute error per op kind (bar) and its 90th percentile (tick); dashed: the 10% goal."),
    ]
    if system is not None:
        mp = measured_points(pvm)
        if len(mp):
            title = f"Measured kernels against the calibrated ceilings of {system.name}"
            plot_roofline(mp, system, out / "measured_roofline.png", title=title)
            plot_roofline(mp, system, out / "measured_roofline.svg", title=title)
            figs.append(figures.from_files("measured_roofline", title, out / "measured_roofline.png", out / "measured_roofline.svg",
                                           caption="Measured kernels (intensity from their work, FLOP/s from their measured "
                                                   "time) against the calibrated spec's ceilings."))
    shown = table.copy()
    for c in ("median_ape", "p90_ape", "within_10pct", "median_error"):
        shown[c] = shown[c].map("{:.1%}".format)
    return {"source": source, "figures": figs, "table_html": html.table_html(shown)}


# -- planner --------------------------------------------------------------------------------------------------


def _col(df: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in df.columns), None)


def normalize_plan(df: pd.DataFrame) -> pd.DataFrame:
    hw = _col(df, "hardware", "system")
    tpot = _col(df, "tpot_s", "tpot_ms")
    tps = _col(df, "tokens_per_s", "tokens_per_s_system", "tokens_s", "throughput")
    if hw is None or tpot is None or tps is None or "batch" not in df.columns:
        raise ReportError(f"planner table lacks hardware/batch/TPOT/tokens_per_s columns: {', '.join(df.columns)}")
    out = pd.DataFrame({"hardware": df[hw], "batch": df["batch"],
                        "tpot_s": df[tpot] / (1e3 if tpot.endswith("_ms") else 1.0), "tokens_per_s": df[tps]})
    for extra in ("tp", "context"):
        if extra in df.columns:
            out[extra] = df[extra]
    fits = _col(df, "fits", "feasible")
    out["fits"] = df[fits].astype(bool) if fits else True
    reason = _col(df, "reason", "infeasible_reason")
    out["reason"] = df[reason] if reason else ""
    return out


def frontier_section(rows: pd.DataFrame, out: Path, model: str, context: int) -> dict[str, Any]:
    rows.to_csv(out / "frontier.csv", index=False)
    ok = rows[rows["fits"]]
    if "tp" in ok.columns:  # one curve per hardware: its smallest TP group that fits
        ok = ok[ok["tp"] == ok.groupby("hardware")["tp"].transform("min")]
    fig = plot_frontier(ok, f"Decode throughput against TPOT: {model}, context {context}")
    saved = figures.save(fig, out, "frontier", caption=(
        "Each curve is one machine over a batch sweep: moving right trades time per output token for tokens/s. "
        "Configurations that do not fit in memory are left out and listed below."))
    shown = rows.assign(tpot_ms=rows["tpot_s"] * 1e3).sort_values(["hardware", "batch"])
    first = ["hardware", "batch", "tpot_ms", "tokens_per_s", "fits", "reason"]
    shown = shown[[c for c in first if c in shown.columns] + [c for c in shown.columns if c not in first and c != "tpot_s"]]
    return {"figures": [saved], "table_html": html.table_html(shown)}


# -- notes on a run and on the page ---------------------------------------------------------------------------


def note_does_not_fit(sec: Section, reason: str) -> None:
    """Say on the run's section that the step does not fit in memory (its times are kept)."""
    warn = f"It does not fit in memory ({reason}): the times are what the step would take if it did."
    sec.headline = f"{sec.headline} {warn}"
    sec.summary_text = f"{sec.summary_text} {warn}"
    sec.missing.append(warn)


def note_basis(sec: Section, measured_share: float, described: str) -> None:
    """Say what the run's prediction rests on (``simulator.basis``): measured or guessed."""
    sec.summary["measured_share"] = measured_share
    what = f"This prediction rests on spec numbers that are {described} (by the time each sets)."
    sec.details = f"{sec.details} {what}".strip()


def note_graph_replay(sec: Section, graph_step_s: float) -> None:
    """The actionable number for a host-bound eager step: what graph replay would give."""
    what = (f"With graph replay (--launch graph) the simulated step is {graph_step_s * 1e3:.3g} ms "
            f"({sec.summary['step_time_s'] / graph_step_s:.2f}× faster).")
    sec.details = f"{sec.details} {what}".strip()
    sec.summary_text = f"{sec.summary_text} {what}"


def page_sentences(sections: list[Section], phases: list[str], pvm: pd.DataFrame | None = None,
                   source: str = "") -> list[str]:
    """The page's summary beyond each run: the fastest machine per phase and, with
    measurements, the model's error against them."""
    out = []
    for ph in phases:
        runs = [s for s in sections if s.phase == ph]
        if len(runs) > 1:
            fastest = min(runs, key=lambda s: s.summary["step_time_s"])
            slowest = max(runs, key=lambda s: s.summary["step_time_s"])
            out.append(f"Fastest {ph} step: {fastest.hardware} ({fastest.summary['step_time_s'] * 1e3:.3g} ms), "
                       f"{slowest.summary['step_time_s'] / fastest.summary['step_time_s']:.1f}× faster than "
                       f"{slowest.hardware}.")
    if pvm is not None:
        e = with_errors(pvm)
        out.append(f"Against {len(e)} measured kernels on {source}, the model's median error is {e['ape'].median():.1%} "
                   f"and {float((e['ape'] <= 0.10).mean()):.0%} are within ±10%.")
    return out
