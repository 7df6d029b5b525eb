"""Chrome / Perfetto trace JSON of a ``SimResult`` (open in https://ui.perfetto.dev).

One process per simulated device; tracks (``tid``): the host CPU (its dispatch of each
op), one per stream (each op from start to end, with its bound), one per link or fabric
resource (prefetch and write-back copies, and the ops whose bytes mostly cross that
link or fabric). Metadata events name every track; views (no kernel, no time) are left out. Times are microseconds with nanosecond resolution, so the same
result always writes the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from hw_models.resource_id import parse

HOST_TID = 0
_STREAM_BASE = 1
_LINK_BASE = 1000


def _us(t: float) -> float:
    return round(float(t) * 1e6, 3)


def trace_events(res) -> list[dict]:
    df = res.ops
    ev: list[dict] = []
    pid = 0
    ev.append({"ph": "M", "pid": pid, "tid": HOST_TID, "name": "process_name",
               "args": {"name": f"{res.meta.get('hardware')} device 0 (tp {res.meta.get('tp')})"}})
    ev.append({"ph": "M", "pid": pid, "tid": HOST_TID, "name": "thread_name", "args": {"name": "host"}})
    lanes = sorted({(int(d), int(s)) for d, s in zip(df["device"], df["stream"], strict=True)})
    lane_tid = {ln: _STREAM_BASE + k for k, ln in enumerate(lanes)}
    for ln, tid in lane_tid.items():
        ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
                   "args": {"name": f"device {ln[0]} stream {ln[1]}"}})
    links = sorted({r for r in res.resources if parse(r).kind in ("link", "interconnect")})
    link_tid = {r: _LINK_BASE + k for k, r in enumerate(links)}
    for r, tid in link_tid.items():
        ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": r}})
    for tid in [HOST_TID, *lane_tid.values(), *link_tid.values()]:
        ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})

    cols = ["id", "name", "kind", "module", "device", "stream", "host_s", "issue_s", "start_s", "end_s", "bound",
            "resource", "time_s"]
    for (oid, name, kind, module, dev, stream, host_s, issue, start, end, bound, resource, t_s) in zip(
            *(df[c] for c in cols), strict=True):
        if host_s > 0:
            ev.append({"ph": "X", "pid": pid, "tid": HOST_TID, "name": f"dispatch {name}", "cat": "host",
                       "ts": _us(issue - host_s), "dur": _us(host_s), "args": {"op": int(oid)}})
        if kind == "view" and end <= start:
            continue  # views launch nothing and take no time: only clutter
        args = {"op": int(oid), "module": module, "bound": bound, "resource": resource,
                "uncontended_us": _us(t_s)}
        ev.append({"ph": "X", "pid": pid, "tid": lane_tid[(int(dev), int(stream))], "name": name, "cat": kind,
                   "ts": _us(start), "dur": _us(end - start), "args": args})
        if resource in link_tid:
            ev.append({"ph": "X", "pid": pid, "tid": link_tid[resource], "name": name, "cat": kind,
                       "ts": _us(start), "dur": _us(end - start), "args": {"op": int(oid)}})
    for oid, kind, resource, nbytes, start, end in zip(
            *(res.copies[c] for c in ("op_id", "kind", "resource", "bytes", "start_s", "end_s")), strict=True):
        for r in str(resource).split(","):
            ev.append({"ph": "X", "pid": pid, "tid": link_tid.get(r, _LINK_BASE + len(link_tid)),
                       "name": f"{kind} for op {int(oid)}", "cat": kind, "ts": _us(start),
                       "dur": _us(end - start), "args": {"bytes": float(nbytes)}})
    return ev


def trace_json(res, path: str | Path | None = None) -> str:
    """The trace as a JSON string; also written to ``path`` when given."""
    doc = {"traceEvents": trace_events(res), "displayTimeUnit": "ns",
           "otherData": {k: v for k, v in res.meta.items() if isinstance(v, (str, int, float)) or v is None}}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    if path is not None:
        Path(path).write_text(text)
    return text
