"""The pipeline behind ``roofsim report``: trace the model, simulate it on each machine,
analyse the roofline, compare with measurements, sweep the planner, render the page.

Each stage's provider lives in its own package (workloads, simulator, validation,
roofsim.planner); this module only wires them and turns their tables into sections.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from . import figures, html
from .accuracy_plot import error_by_kind, plot_error_by_kind, plot_pred_vs_measured
from .frames import from_sim
from .frontier_plot import plot_frontier
from .report import ReportError, Section, comparison, section, slug, write_html

PHASES = ("prefill", "decode")
ROOFLINE_CAPTION = (
    "Hierarchical roofline: one sloped ceiling per memory level and one flat ceiling per dtype peak of the matrix "
    "and vector units; each op is a point at its arithmetic intensity and attained FLOP/s (alone, without host or "
    "contention), sized by its share of the op time and coloured by kind. Ops with no FLOPs sit on the bottom edge.")


def roofline_figure(graph, system, out_dir: Path, title: str, measured: pd.DataFrame | None = None):
    """C's analysis and chart for one run: writes ops.csv, roofline.png/.svg, roofline.json."""
    from reports.roofline_plot import plot_roofline
    from simulator.roofline import analyze

    df = analyze(graph, system)
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


def load_measurements(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any], Any]:
    """(rows, meta, calibrated SystemSpec or None) of a measurement directory."""
    d = Path(path)
    csv = d / "measurements.csv" if d.is_dir() else d
    if not csv.exists():
        raise ReportError(f"--measurements: {csv} does not exist (expected a directory with measurements.csv)")
    from validation.harness.store import Store, read_csv

    rows = read_csv(csv)
    meta = Store(csv.parent).read_meta()
    system = None
    spec = csv.parent / "hardware.yaml"
    if spec.exists():
        from hw_models.catalog import load

        system = load(str(spec))
    preds = csv.parent / "predictions.csv"
    if "predicted_s" not in rows.columns and preds.exists() and (not spec.exists() or preds.stat().st_mtime >= spec.stat().st_mtime):
        # calibrate's own predictions with the spec beside them: reuse instead of re-tracing every case
        try:
            p = pd.read_csv(preds)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
            raise ReportError(f"--measurements: {preds} is not a readable CSV ({str(e).splitlines()[0]}); "
                              "delete it or rerun roofsim calibrate --no-measure") from None
        if {"case_id", "predicted_s"} <= set(p.columns):
            p["predicted_s"] = pd.to_numeric(p["predicted_s"], errors="coerce")
            cols = ["case_id", "predicted_s"] + (["held_out"] if "held_out" in p.columns else [])
            rows = rows.merge(p[cols].drop_duplicates("case_id"), on="case_id", how="left")
    return rows, meta, system


def predicted_vs_measured(rows: pd.DataFrame, system) -> pd.DataFrame:
    """Held-out measured cases with kind, flops, bytes, measured_s and predicted_s.

    A directory that already holds predictions (a ``predicted_s`` column) is used as it is;
    otherwise every row is predicted with ``system`` (its calibrated hardware.yaml) by
    ``validation.predict.predict_frame``. Only the held-out split is shown: rows the fit saw
    would flatter the model.
    """
    if "predicted_s" in rows.columns:
        out = rows[rows["status"].eq("ok")] if "status" in rows.columns else rows
        out = out.rename(columns={"median_s": "measured_s"})
        if "held_out" in out.columns:
            held = out["held_out"].astype(str).str.lower().isin(("true", "1"))
            out = out[held] if held.sum() >= 5 else out
    else:
        if system is None:
            raise ReportError("--measurements: no hardware.yaml beside measurements.csv to predict with "
                              "(run roofsim calibrate on it first)")
        from validation.predict import predict_frame

        out = predict_frame(rows, system)
        if out.empty:
            raise ReportError("--measurements: no usable (status ok) rows to compare")
        work = [c for c in ("flops", "bytes", "op", "shape", "dtype") if c in rows.columns]
        out = out.merge(rows[["case_id", *work]].drop_duplicates("case_id"), on="case_id", how="left")
        if "held_out" in out.columns and out["held_out"].sum() >= 5:
            out = out[out["held_out"].astype(bool)]
    keep = [c for c in ("case_id", "family", "kind", "op", "shape", "dtype", "flops", "bytes", "measured_s", "predicted_s")
            if c in out.columns]
    out = out[keep].dropna(subset=["measured_s", "predicted_s"])
    return out[(out["measured_s"] > 0) & (out["predicted_s"] > 0)].reset_index(drop=True)


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
            from reports.roofline_plot import plot_roofline

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


def frontier_rows(model: str, hardware: list[str], batches: list[int], *, context: int, prompt: int, dtype: str,
                  launch: str, fusion: str = "none") -> pd.DataFrame:
    """Decode TPOT and tokens/s per hardware over ``batches``, from ``roofsim.planner.plan``.
    Columns: hardware, batch, tpot_s, tokens_per_s, fits, reason."""
    from roofsim.planner import plan

    # one device per replica (tp 1): the frontier compares what each machine's device does
    df = plan(model, hardware, tp=[1], batch=list(batches), context=[context], prompt=prompt, dtype=dtype,
              launch=launch, fusion=fusion, progress=False)
    out = normalize_plan(df)
    out.attrs["source"] = "roofsim.planner.plan"
    return out


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


def _fits(graph, system) -> tuple[bool, str]:
    from simulator.footprint import footprint

    fp = footprint(graph, system)
    return bool(fp.fits), str(fp.reason or "")


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


# -- the whole report -----------------------------------------------------------------------------------------


def build_report(model: str, hardware: list[str], *, phase: str = "decode", batch: int = 1, context: int = 2048,
                 prompt: int = 512, dtype: str = "bf16", launch: str = "eager", measurements: str | Path | None = None,
                 out: str | Path, frontier_batches: list[int] | tuple[int, ...] = (1, 4, 16, 64),
                 command: str = "", given: Any = (), fusion: str | list[str] = "none") -> Path:
    """Write ``out/report.html`` and its figures and tables; return the HTML's path.

    ``given``: the step options the user set explicitly (see ``workloads.build``).
    ``fusion``: one policy or several (``["none", "serving"]``): with several, every
    hardware runs under each, side by side, so a reader sees what fused kernels buy.
    """
    from workloads.fusion import policy

    fusions = [fusion] if isinstance(fusion, str) else list(fusion)
    for f in fusions:
        policy(f)
    from hw_models.catalog import load
    from simulator import simulate
    from workloads import build

    if phase not in (*PHASES, "both"):
        raise ReportError(f"--phase must be prefill, decode or both, got {phase!r}")
    if not hardware:
        raise ReportError("--hardware: give at least one catalog id or YAML path")
    phases = ["decode", "prefill"] if phase == "both" else [phase]
    systems = [load(h) for h in hardware]  # bad ids fail before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    pvm, msystem, msource = None, None, ""
    if measurements:
        rows, meta, msystem = load_measurements(measurements)
        pvm = predicted_vs_measured(rows, msystem)
        msource = str(meta.get("device_name") or meta.get("device") or Path(measurements).name)

    sections: list[Section] = []
    runs = [(ph, fu) for ph in phases for fu in fusions]
    for ph, fu in runs:
        graph = build(model, phase=ph, batch=batch, context=context, prompt=prompt, dtype=dtype, given=given,
                      fusion=fu)
        tag = f" · fusion {fu}" if len(fusions) > 1 else ""
        for sysm in systems:
            res = simulate(graph, sysm, launch=launch)
            summary = res.summary()
            summary.setdefault("prompt", prompt)
            key = slug(f"{sysm.id}-{ph}" + (f"-{fu}" if len(fusions) > 1 else ""))
            run_dir = out / key
            run_dir.mkdir(parents=True, exist_ok=True)
            overlay = measured_points(pvm) if pvm is not None and msystem is not None and msystem.id == sysm.id else None
            roof = roofline_figure(graph, sysm, run_dir, f"Roofline: {model} {ph} (batch {batch}) on {sysm.name}", overlay)
            frame = from_sim(res.to_pandas(), getattr(res, "copies", None))
            sec = section(summary, frame, run_dir, key=key, graph_ops=graph.to_pandas(),
                          prompt=prompt if ph == "prefill" else None,
                          device_word="GPU" if sysm.device.kind == "gpu" else "CPU")
            sec.figures.insert(0, roof)
            fits, reason = _fits(graph, sysm)
            sec.summary["fits"] = fits
            if not fits:
                warn = f"It does not fit in memory ({reason}): the times are what the step would take if it did."
                sec.headline = f"{sec.headline} {warn}"
                sec.summary_text = f"{sec.summary_text} {warn}"
                sec.missing.append(warn)
            if launch == "eager" and str(summary.get("bottleneck", "")).startswith("host"):
                # the actionable number for a host-bound step: what graph replay would give
                g_step = simulate(graph, sysm, launch="graph").step_time_s
                what = (f"With graph replay (--launch graph) the simulated step is {g_step * 1e3:.3g} ms "
                        f"({summary['step_time_s'] / g_step:.2f}× faster).")
                sec.details = f"{sec.details} {what}".strip()
                sec.summary_text = f"{sec.summary_text} {what}"
            sec.label = f"{ph} on {sysm.id} ({sysm.name}){tag}"
            if tag:
                sec.hardware = f"{sysm.id}{tag}"
            sec.files = sorted(p.name for p in run_dir.iterdir() if p.is_file())
            sections.append(sec)

    comp = comparison(sections)
    comp.to_csv(out / "comparison.csv", index=False)
    accuracy = accuracy_section(pvm, out, msource, msystem) if pvm is not None and len(pvm) else None
    frontier = None
    if frontier_batches:
        rows = frontier_rows(model, hardware, list(frontier_batches), context=context, prompt=prompt, dtype=dtype,
                             launch=launch, fusion=fusions[-1])
        frontier = frontier_section(rows, out, model, context)
    extra = []
    for ph in phases:
        runs = [s for s in sections if s.phase == ph]
        if len(runs) > 1:
            fastest = min(runs, key=lambda s: s.summary["step_time_s"])
            slowest = max(runs, key=lambda s: s.summary["step_time_s"])
            extra.append(f"Fastest {ph} step: {fastest.hardware} ({fastest.summary['step_time_s'] * 1e3:.3g} ms), "
                         f"{slowest.summary['step_time_s'] / fastest.summary['step_time_s']:.1f}× faster than "
                         f"{slowest.hardware}.")
    if accuracy is not None:
        from .accuracy_plot import with_errors

        e = with_errors(pvm)
        extra.append(f"Against {len(e)} measured kernels on {msource}, the model's median error is {e['ape'].median():.1%} "
                     f"and {float((e['ape'] <= 0.10).mean()):.0%} are within ±10%.")
    title = f"roofsim report: {model}"
    subtitle = (f"{' and '.join(phases)} · batch {batch} · context {context} · prompt {prompt} · {dtype} · {launch} launch"
                f" · fusion {', '.join(fusions)}"
                f" · {', '.join(s.id for s in systems)}")
    return write_html(out, sections, title=title, subtitle=subtitle, command=command or f"roofsim report {model}",
                      comparison_df=comp, accuracy=accuracy, frontier=frontier, extra_summary=extra)
