"""Predict measured rows with the one cost model: ``evaluate`` the terms, run the engine's recurrence.

``row_times(rowset, params)`` is the single path from parameters to predicted seconds:
``validate`` calls it with a spec's ``Params``, the fit's objective with each candidate
parameter vector. Op durations come from ``simulator.costmodel.evaluate``; host costs
from ``simulator.engine.host_costs``; a row's figure from ``simulator.fastpath``
(``steady_period`` for loops, ``chain_times`` for one step), as ``simulate`` would.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hw_models.spec import SystemSpec
from simulator.costmodel import evaluate
from simulator.engine import host_costs
from simulator.fastpath import chain_times, steady_period
from simulator.params import Params

from .rows import RowSet, build_rowset, traced_rows

#: the engine's launch mode for each row timing (``validation.rows``)
LAUNCH_OF_TIMING = {"loop": "loop", "once": "loop", "step": "eager", "graph": "graph", "device": "device"}


def row_times(rs: RowSet, params: Params) -> np.ndarray:
    """Predicted seconds of every row of ``rs`` under ``params``."""
    ev = evaluate(rs.table, params)
    dur = ev.time[rs.op_term]
    n = rs.n
    timing = rs.rows["timing"].to_numpy()
    op_timing = timing[rs.op_row] if len(rs.op_row) else np.array([], dtype=object)
    host = np.zeros(len(dur))
    for t, launch in LAUNCH_OF_TIMING.items():
        m = op_timing == t
        if m.any() and t != "graph":
            host[m] = host_costs(rs.op_launches[m], launch, params, rs.op_library[m])
    g = op_timing == "graph"
    if g.any():
        host[g] = rs.op_launches[g] * params.scalar("host.graph_node")
    D = np.bincount(rs.op_row, weights=dur, minlength=n)
    H = np.bincount(rs.op_row, weights=host, minlength=n)
    L = np.bincount(rs.op_row, weights=rs.op_launches, minlength=n)
    out = np.empty(n)
    loop = timing == "loop"
    out[loop] = steady_period(H[loop], D[loop], rs.serial)
    dev = timing == "device"
    out[dev] = D[dev]
    gr = timing == "graph"
    if gr.any():
        # one replay pays the graph launch once; the harness reports time per node
        period = steady_period(H[gr] + params.scalar("host.graph_launch"), D[gr], rs.serial)
        out[gr] = period / np.maximum(L[gr], 1.0)
    for i in np.flatnonzero((timing == "step") | (timing == "once")):
        m = rs.op_row == i
        out[i] = chain_times(host[m], dur[m], rs.serial)[2][-1]
    return out


def bounds(rs: RowSet, params: Params) -> list[str]:
    """The term that binds most of each row's op time (for reports)."""
    from simulator.costmodel import costs_of

    ev = evaluate(rs.table, params)
    costs = costs_of(rs.table, ev, list(range(rs.table.n)))
    out: list[dict[str, float]] = [{} for _ in range(rs.n)]
    for j, i in zip(rs.op_term.tolist(), rs.op_row.tolist(), strict=True):
        c = costs[j]
        out[i][c.bound] = out[i].get(c.bound, 0.0) + c.time_s
    return [max(b, key=b.get) if b else "" for b in out]


def predict_frame(df: pd.DataFrame, system: SystemSpec, only_held_out: bool = False) -> pd.DataFrame:
    """Rows of ``df`` (status ok) with ``predicted_s``, ``ape``, ``held_out``, ``bound``, ``note``."""
    traced, notes = traced_rows(df)
    rs = build_rowset(traced, system)
    params = Params(system)
    pred = row_times(rs, params) if rs.n else np.zeros(0)
    res = rs.rows.copy()
    res["predicted_s"] = pred
    res["bound"] = bounds(rs, params) if rs.n else []
    res["note"] = ""
    extra = {r["case_id"]: r for _, r in df.iterrows()}
    res["op"] = [extra[c].get("op", "") for c in res["case_id"]] if len(res) else []
    res["p10_s"] = [float(extra[c].get("p10_s", math.nan)) for c in res["case_id"]] if len(res) else []
    res["p90_s"] = [float(extra[c].get("p90_s", math.nan)) for c in res["case_id"]] if len(res) else []
    # rows that could not be traced stay in the frame, unpredicted, with the reason
    from .holdout import held_out

    lost = []
    for note in notes:
        cid = note.split(":", 1)[0]
        r = extra.get(cid)
        if r is None:
            continue
        lost.append({"case_id": cid, "family": r["family"], "kind": r["kind"], "measured_s": float(r["median_s"]),
                     "held_out": held_out(r.to_dict()), "timing": "", "spread": math.nan, "pinned": True,
                     "predicted_s": math.nan, "bound": "", "note": note.split(": ", 1)[1], "op": r.get("op", ""),
                     "p10_s": math.nan, "p90_s": math.nan})
    if lost:
        res = pd.concat([res, pd.DataFrame(lost)], ignore_index=True)
    if only_held_out and len(res):
        res = res[res["held_out"]].reset_index(drop=True)
    if len(res):
        res["signed_err"] = res["predicted_s"] / res["measured_s"] - 1.0
        res["ape"] = res["signed_err"].abs()
    return res
