"""Canonical tables the figures read, built from a ``SimResult.to_pandas()`` frame.

The engine's frame has one row per op per resource it occupied (the host's dispatch
track included). The figures need two views of it: the *timeline* (one row per busy
interval on a host, stream or link lane) and the *ops* (one row per op: its device time,
kind and the term that bound it). Column names are read through small alias lists so a
renamed column in the engine fails here, in one place, with a clear message.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

_ALIASES = {
    "op_id": ("op_id", "id", "op"),
    "name": ("name", "op_name"),
    "kind": ("kind", "op_kind"),
    "lane": ("resource", "lane", "track"),
    "start_s": ("start_s", "start"),
    "end_s": ("end_s", "end"),
    "bound": ("bound", "bound_by", "binding"),
    "term": ("term", "bound_term"),
}

LANE_TYPES = ("host", "stream", "link")


class FrameError(ValueError):
    """A simulation frame that lacks a column a figure needs."""

    user_facing = True


def _pick(df: pd.DataFrame, key: str, required: bool = True) -> str | None:
    for c in _ALIASES[key]:
        if c in df.columns:
            return c
    if required:
        raise FrameError(
            f"simulation frame has no {key!r} column (looked for {', '.join(_ALIASES[key])}; has {', '.join(map(str, df.columns))})"
        )
    return None


def lane_type(lane: str) -> str:
    """host | stream | link | memory for a resource id ("host", "dev0.stream0", "host.link.h2d", "dev0.hbm")."""
    s = str(lane).lower()
    if s == "host" or s.startswith("host.dispatch") or s in ("cpu", "dispatch") or s.startswith("host:"):
        return "host"
    if "link" in s or s.startswith("interconnect"):
        return "link"
    if "stream" in s or re.fullmatch(r"(dev|gpu|device)\d*(\.compute|\.sm)?", s) or s.startswith("pim"):
        return "stream"
    return "memory"


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """The engine frame with canonical column names and a ``lane_type`` column."""
    cols = {k: _pick(df, k, required=k in ("lane", "start_s", "end_s")) for k in _ALIASES}
    out = pd.DataFrame({k: df[c] if c is not None else None for k, c in cols.items()})
    if cols["op_id"] is None:
        out["op_id"] = np.arange(len(df))
    out["kind"] = out["kind"].fillna("unknown") if cols["kind"] else "unknown"
    out["name"] = out["name"].fillna("") if cols["name"] else out["kind"]
    out["bound"] = out["bound"].fillna("unknown") if cols["bound"] else "unknown"
    out["term"] = out["term"].fillna(out["bound"]) if cols["term"] else out["bound"]
    out["lane"] = out["lane"].astype(str)
    out["start_s"] = out["start_s"].astype(float)
    out["end_s"] = out["end_s"].astype(float)
    out["lane_type"] = out["lane"].map(lane_type)
    return out.reset_index(drop=True)


def timeline(df: pd.DataFrame) -> pd.DataFrame:
    """Busy intervals on host, stream and link lanes (memory levels are not lanes: an op's
    HBM traffic is already the stream's bar)."""
    c = canonical(df)
    return c[c["lane_type"].isin(LANE_TYPES)].sort_values(["lane", "start_s"]).reset_index(drop=True)


def device_ops(df: pd.DataFrame) -> pd.DataFrame:
    """One row per op that ran on a device stream (or a link, for transfers): start, end,
    duration, kind, bound. An op seen on several lanes keeps its earliest start and latest end."""
    c = canonical(df)
    dev = c[c["lane_type"].isin(("stream", "link"))]
    if dev.empty:
        return pd.DataFrame(columns=["op_id", "name", "kind", "bound", "term", "start_s", "end_s", "time_s"])
    g = dev.groupby("op_id", sort=False)
    ops = g.agg(name=("name", "first"), kind=("kind", "first"), bound=("bound", "first"), term=("term", "first"),
                start_s=("start_s", "min"), end_s=("end_s", "max")).reset_index()
    ops["time_s"] = ops["end_s"] - ops["start_s"]
    return ops.sort_values("start_s").reset_index(drop=True)


def _link_lanes(resource: Any) -> list[str]:
    if not isinstance(resource, str):
        return []
    return [r for r in resource.split(",") if lane_type(r) == "link"]


def from_sim(ops: pd.DataFrame, copies: pd.DataFrame | None = None) -> pd.DataFrame:
    """``SimResult.to_pandas()`` (one row per op: issue_s, start_s, end_s, device, stream,
    resource, bound) -> the long frame the figures read: one row per busy interval on the
    host's dispatch track, each device stream and each link an op or prefetch copy used.

    The host dispatches in program order, so its busy interval for an op runs from the
    previous op's issue to this op's issue; ops issued at no host cost (views) add none.
    """
    if "issue_s" not in ops.columns:
        return ops  # already one row per lane interval
    bound_col = "bound" if "bound" in ops.columns else None
    has_term = "term" in ops.columns
    rows = []
    prev = 0.0
    for r in ops.sort_values("issue_s", kind="stable").itertuples(index=False):
        d = r._asdict()
        base = {"op_id": d.get("id", d.get("op_id")), "name": d.get("name", ""), "kind": d.get("kind", "unknown"),
                "bound": d.get(bound_col, "unknown") if bound_col else "unknown"}
        base["term"] = d.get("term") if has_term else base["bound"]
        issue = float(d["issue_s"])
        if issue > prev:
            rows.append({**base, "resource": "host", "start_s": prev, "end_s": issue, "bound": "host", "term": "host"})
            prev = issue
        lane = f"dev{int(d.get('device', 0) or 0)}.stream{int(d.get('stream', 0) or 0)}"
        rows.append({**base, "resource": lane, "start_s": float(d["start_s"]), "end_s": float(d["end_s"])})
        for link in _link_lanes(d.get("resource")):
            rows.append({**base, "resource": link, "start_s": float(d["start_s"]), "end_s": float(d["end_s"])})
    if copies is not None and len(copies):
        start = "start_s" if "start_s" in copies.columns else "start"
        end = "end_s" if "end_s" in copies.columns else "end"
        for i, r in enumerate(copies.to_dict(orient="records")):
            for link in _link_lanes(r.get("resource")) or ["prefetch.link"]:
                rows.append({"op_id": f"copy{i}", "name": "prefetch copy", "kind": "transfer", "bound": "link", "term": "link",
                             "resource": link, "start_s": float(r[start]), "end_s": float(r[end])})
    return pd.DataFrame(rows, columns=["op_id", "name", "kind", "bound", "term", "resource", "start_s", "end_s"])
