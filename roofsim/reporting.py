"""The pipeline behind ``roofsim report``: trace the model, simulate it on each machine,
analyse the roofline, compare with measurements, sweep the planner, render the page.

Each stage's provider lives in its own package (workloads, simulator, validation,
roofsim.planner) and each section's drawing in ``reports``; this module runs the stages
and hands their tables to the drawing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from reports.frames import from_sim
from reports.report import ReportError, Section, comparison, section, slug, write_html
from reports.sections import (
    accuracy_section,
    frontier_section,
    measured_points,
    normalize_plan,
    note_basis,
    note_does_not_fit,
    note_graph_replay,
    page_sentences,
    roofline_section,
)

PHASES = ("prefill", "decode")


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


def _fits(graph, system) -> tuple[bool, str]:
    from simulator.footprint import footprint

    fp = footprint(graph, system)
    return bool(fp.fits), str(fp.reason or "")


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
    from simulator.basis import basis, describe, measured_share
    from simulator.roofline import analyze
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
            roof = roofline_section(analyze(graph, sysm), sysm, run_dir,
                                    f"Roofline: {model} {ph} (batch {batch}) on {sysm.name}", overlay)
            frame = from_sim(res.to_pandas(), getattr(res, "copies", None))
            sec = section(summary, frame, run_dir, key=key, graph_ops=graph.to_pandas(),
                          prompt=prompt if ph == "prefill" else None,
                          device_word="GPU" if sysm.device.kind == "gpu" else "CPU")
            sec.figures.insert(0, roof)
            fits, reason = _fits(graph, sysm)
            sec.summary["fits"] = fits
            if not fits:
                note_does_not_fit(sec, reason)
            shares = basis(res, sysm, launch)["shares"]
            note_basis(sec, measured_share(shares), describe(shares))
            if launch == "eager" and str(summary.get("bottleneck", "")).startswith("host"):
                note_graph_replay(sec, simulate(graph, sysm, launch="graph").step_time_s)
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
    extra = page_sentences(sections, phases, pvm if accuracy is not None else None, msource)
    title = f"roofsim report: {model}"
    subtitle = (f"{' and '.join(phases)} · batch {batch} · context {context} · prompt {prompt} · {dtype} · {launch} launch"
                f" · fusion {', '.join(fusions)}"
                f" · {', '.join(s.id for s in systems)}")
    return write_html(out, sections, title=title, subtitle=subtitle, command=command or f"roofsim report {model}",
                      comparison_df=comp, accuracy=accuracy, frontier=frontier, extra_summary=extra)
