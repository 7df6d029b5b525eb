"""``roofsim report``'s page: turn simulated steps into figures, tables and a
self-contained ``report.html``.

:func:`section` turns one simulated step (its summary dict and per-op frame) into
figures and tables with no knowledge of how they were produced, so tests can feed it
hand-made frames; :func:`write_html` renders the page. ``roofsim.reporting`` runs the
pipeline (workloads -> simulator -> roofline, validation, planner) that feeds them.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from hw_models.intervals import union_length

from . import figures, html
from .breakdown import attribute, plot_breakdown
from .frames import canonical, device_ops
from .summary import describe_bound, sentences
from .timeline_plot import plot_timeline

TOP_OPS = 15


class ReportError(ValueError):
    """Bad report options (unknown phase, empty hardware list, unreadable measurements)."""

    user_facing = True


@dataclass
class Section:
    """One (hardware, phase) run as the page shows it."""

    key: str
    label: str
    hardware: str
    phase: str
    summary: dict[str, Any]
    summary_text: str
    idle_frac: float
    headline: str = ""
    details: str = ""
    figures: list[figures.SavedFigure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    bound_html: str = ""
    top_html: str = ""
    files: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "run"


def top_ops(ops: pd.DataFrame, step_time_s: float, graph_ops: pd.DataFrame | None = None, n: int = TOP_OPS) -> pd.DataFrame:
    """The ``n`` longest ops: name, kind, bound, time (µs), share of the step, and FLOPs/bytes when known."""
    t = ops.sort_values("time_s", ascending=False).head(n).copy()
    t["time_us"] = t["time_s"] * 1e6
    t["share"] = t["time_s"] / step_time_s if step_time_s > 0 else 0.0
    cols = ["op_id", "name", "kind", "bound", "time_us", "share"]
    if graph_ops is not None and "id" in graph_ops.columns:
        extra = graph_ops[["id", "module", "flops", "bytes"]].rename(columns={"id": "op_id"})
        t = t.merge(extra, on="op_id", how="left")
        t["intensity"] = t["flops"] / t["bytes"].where(t["bytes"] > 0)
        cols = ["op_id", "module", *cols[1:], "flops", "bytes", "intensity"]
    return t[cols].reset_index(drop=True)


def engine_terms(summary: dict[str, Any], step: float) -> pd.DataFrame | None:
    """The engine's own split of the step by binding term (idle time charged to what the
    stream waited for), when it adds up to the step; ``None`` otherwise."""
    tbb = summary.get("time_by_bound") or {}
    if not tbb or step <= 0 or abs(sum(tbb.values()) - step) > 1e-6 * step:
        return None
    rows = sorted(((str(k), float(v)) for k, v in tbb.items()), key=lambda kv: -kv[1])
    out = pd.DataFrame(rows, columns=["bound", "time_s"])
    out["share"] = out["time_s"] / step
    return out


def top_groups(ops: pd.DataFrame, step_time_s: float, graph_ops: pd.DataFrame | None = None,
               n: int = TOP_OPS) -> pd.DataFrame:
    """Ops folded across repeated layers (``layers.3.mlp`` and ``layers.7.mlp`` are one row):
    how many, their total device time and share of the step. A decoder's 32 identical layers
    otherwise fill a top-N table with one op."""
    t = ops.copy()
    if graph_ops is not None and "module" in graph_ops.columns:
        t = t.merge(graph_ops[["id", "module", "flops", "bytes"]].rename(columns={"id": "op_id"}), on="op_id", how="left")
    else:
        t["module"], t["flops"], t["bytes"] = "", float("nan"), float("nan")
    t["where"] = t["module"].fillna("").astype(str).str.replace(r"\.\d+(?=\.|$)", ".*", regex=True)
    g = t.groupby(["where", "name", "kind", "bound"], dropna=False).agg(
        count=("op_id", "size"), time_s=("time_s", "sum"), flops=("flops", "sum"), bytes=("bytes", "sum")).reset_index()
    g = g.sort_values("time_s", ascending=False).head(n)
    g["time_ms"] = g["time_s"] * 1e3
    g["share"] = g["time_s"] / step_time_s if step_time_s > 0 else 0.0
    g["intensity"] = g["flops"] / g["bytes"].where(g["bytes"] > 0)
    return g[["where", "name", "kind", "bound", "count", "time_ms", "share", "intensity"]].reset_index(drop=True)


def section(summary: dict[str, Any], sim_frame: pd.DataFrame, out_dir: Path, *, key: str | None = None,
            roofline: Figure | None = None, graph_ops: pd.DataFrame | None = None, prompt: int | None = None,
            device_word: str = "GPU", missing: list[str] | None = None) -> Section:
    """Figures and tables for one simulated step; writes them under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hw, phase = str(summary.get("hardware", "hardware")), str(summary.get("phase", "step"))
    key = key or slug(f"{hw}-{phase}")
    label = f"{phase} on {hw}"
    canon = canonical(sim_frame)
    canon.to_csv(out_dir / "timeline.csv", index=False)
    ops = device_ops(sim_frame)
    t0, t1 = float(canon["start_s"].min()), float(canon["end_s"].max())
    step = float(summary.get("step_time_s") or (t1 - t0))
    # the step window is the engine's: it may start before the first device op (host issue)
    t1 = max(t1, t0 + step)
    by_kind = attribute(ops, t0, t0 + step, "kind")
    by_bound = engine_terms(summary, step)
    if by_bound is None:
        by_bound = attribute(ops, t0, t0 + step, "term").rename(columns={"term": "bound"})
    by_kind.to_csv(out_dir / "breakdown_by_kind.csv", index=False)
    by_bound.to_csv(out_dir / "breakdown_by_bound.csv", index=False)
    streams = canon[canon["lane_type"] == "stream"]
    busy = union_length(streams["start_s"].to_numpy(), streams["end_s"].to_numpy())
    idle_frac = max(0.0, 1.0 - busy / step) if step > 0 else 0.0
    top = top_ops(ops, step, graph_ops)
    top.to_csv(out_dir / "top_ops.csv", index=False)
    groups = top_groups(ops, step, graph_ops)
    groups.to_csv(out_dir / "top_op_groups.csv", index=False)
    said = sentences(summary, device_idle_frac=idle_frac, by_kind=by_kind, device_word=device_word, prompt=prompt)
    sec = Section(key, label, hw, phase, summary, " ".join(said), idle_frac, missing=list(missing or []),
                  headline=said[0], details=" ".join(said[1:]))
    ctx = f"{summary.get('model', '')} {phase}, batch {summary.get('batch')}, {hw}"
    if roofline is not None:
        sec.figures.append(figures.save(roofline, out_dir, "roofline", caption=(
            "Hierarchical roofline: one ceiling per memory level (sloped) and per dtype peak (flat); each op is a "
            "point at its arithmetic intensity and attained FLOP/s, sized by its share of the step and coloured by kind."
            " Points far below every ceiling are bound by something the roofline does not see (launch, host, latency).")))
    sec.figures.append(figures.save(plot_timeline(sim_frame, f"Timeline of one step: {ctx}"), out_dir, "timeline", caption=(
        "One lane per host dispatch track, device stream and link. Shaded red stretches on a stream are idle device "
        "time: when the host lane is solid and the stream has holes, the host is the bound.")))
    sec.figures.append(figures.save(plot_breakdown(by_kind, by_bound, f"Where the step's {step * 1e3:.3g} ms went: {ctx}"),
                                    out_dir, "breakdown", caption=(
        "The step split by op kind (top) and by the term that bound each op (bottom); overlapping ops share their "
        "common time, hatched is time with no device op running. Both bars add up to the step time.")))
    bound_tbl = by_bound.assign(bound=by_bound["bound"].map(lambda b: b if b.startswith("idle") else f"{b} ({describe_bound(b)})"),
                                time_ms=by_bound["time_s"] * 1e3)[["bound", "time_ms", "share"]]
    sec.bound_html = html.table_html(bound_tbl)
    sec.top_html = html.table_html(groups.assign(share=groups["share"].map("{:.1%}".format)))
    sec.files = sorted(p.name for p in out_dir.iterdir() if p.is_file())
    return sec


def comparison(sections: list[Section]) -> pd.DataFrame:
    """One row per run: the numbers a design review compares."""
    rows = []
    for s in sections:
        m = s.summary
        step = float(m["step_time_s"])
        floor = max(float(m.get("memory_floor_s") or 0), float(m.get("compute_floor_s") or 0))
        rows.append({
            "hardware": s.hardware,
            "phase": s.phase,
            "batch": m.get("batch"),
            "launch": m.get("launch"),
            "step_ms": step * 1e3,
            "tokens_per_s": (int(m.get("batch") or 1) * (1 if s.phase == "decode" else int(m.get("prompt") or 1))) / step
            if step > 0 else float("nan"),
            "bottleneck": describe_bound(m.get("bottleneck", "")),
            "memory_floor_ms": float(m.get("memory_floor_s") or 0) * 1e3,
            "compute_floor_ms": float(m.get("compute_floor_s") or 0) * 1e3,
            "pct_of_roofline": floor / step if step > 0 else float("nan"),
            "device_idle": s.idle_frac,
            "kernels": m.get("kernels"),
            "fits": m.get("fits", True),
            # share of the step set by measured numbers (here or elsewhere), not estimates
            "measured_share": m.get("measured_share", float("nan")),
        })
    return pd.DataFrame(rows)


def write_html(out: Path, sections: list[Section], *, title: str, subtitle: str, command: str,
               comparison_df: pd.DataFrame | None = None, accuracy: dict | None = None,
               frontier: dict | None = None, extra_summary: list[str] | None = None,
               missing: list[str] | None = None) -> Path:
    comp_html = ""
    if comparison_df is not None and len(comparison_df) > 1:
        shown = comparison_df.copy()
        for c in ("pct_of_roofline", "device_idle"):
            shown[c] = shown[c].map("{:.0%}".format)
        comp_html = html.table_html(shown)
    page = html.render({
        "title": title, "subtitle": subtitle, "runs": sections, "comparison_html": comp_html,
        "accuracy": accuracy, "frontier": frontier, "extra_summary": extra_summary or [],
        "missing": missing or [], "command": command,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    })
    path = Path(out) / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
