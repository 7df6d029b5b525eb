"""From measured rows to the work roofsim sees: rebuild each case, trace it, list its terms.

Prediction and measurement describe the same work: the harness timed ``case.make()``;
here the same callable (``case.module()``) is traced by ``workloads.trace`` and its ops
get their cost terms from ``simulator.costmodel`` (``op_terms``). Whole-model rows use
``workloads.build`` with the zoo id. A ``RowSet`` holds the terms of many rows as one
``TermTable``, so one ``evaluate`` call prices them all: ``validate`` does it with a
spec's ``Params``, the fit with each candidate parameter vector (``validation.predict``).

How a row was timed (its ``timing`` column; the family's default when absent) decides
how its ops' times make the measured figure, through the engine's own recurrence
(``simulator.fastpath``):

* ``loop``: a bare callable in a tight loop, per call: the steady state of the chain
  with ``host.op_dispatch`` per launch (harness kernel rows);
* ``once``: one bare call from an idle device (a cold row: the caches were flushed and
  the device synchronised before each call), host and kernels in series: the end of
  one pass of the chain with ``host.op_dispatch`` per launch;
* ``step``: one whole step issued from model code: the end of one pass of the chain
  with ``host.dispatch`` per launch (whole-model and framework rows);
* ``graph``: a replayed CUDA graph in a loop, per node;
* ``device``: the kernels alone, as a profiler sums kernel durations (public datasets
  measured with CUDA events or Kineto).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hw_models.spec import SystemSpec
from simulator.costmodel import OpTerms, Structure, TermTable, graph_terms, op_terms
from simulator.placement import Placement
from validation.harness.cases import Case
from workloads.op import LIBRARY_KINDS
from workloads.payloads import Collective, Transfer

from .holdout import held_out

TIMINGS = ("loop", "once", "step", "graph", "device")
#: how each harness family is timed when the dataset does not say
TIMING_OF_FAMILY = {"model": "step", "framework": "step", "graph": "graph"}


class PredictError(ValueError):
    user_facing = True


def case_of(row: pd.Series | dict[str, Any]) -> Case:
    params = row.get("params") or ""
    if isinstance(params, float):  # NaN from pandas
        params = ""
    try:
        shape = json.loads(row["shape"])
        params = json.loads(params) if params else {}
    except (TypeError, json.JSONDecodeError) as e:
        raise PredictError(f"{row.get('case_id')}: shape/params column is not valid JSON ({e})") from None
    if not isinstance(shape, dict) or not isinstance(params, dict):
        raise PredictError(f"{row.get('case_id')}: shape and params must be JSON objects")
    return Case(family=str(row["family"]), op=str(row["op"]), shape=shape, dtype=str(row["dtype"]), params=params)


def timing_of(row: pd.Series | dict[str, Any]) -> str:
    t = row.get("timing")
    if isinstance(t, str) and t:
        if t not in TIMINGS:
            raise PredictError(f"{row.get('case_id')}: timing {t!r} is not one of {', '.join(TIMINGS)}")
        return t
    family = TIMING_OF_FAMILY.get(str(row["family"]))
    if family:
        return family
    return "once" if str(row.get("cold", "")).lower() in ("true", "1") else "loop"


_TRACES: dict[str, Any] = {}

#: case params that change the work traced (the rest, such as a public row's model and
#: TP degree, say where a row came from, not what ran)
TRACE_PARAMS = ("causal", "bias", "fusion", "pinned", "direction", "collective", "launch")


def _trace_key(case: Case, backend: str) -> str:
    if case.family in ("model", "framework"):
        return case.id
    return backend + ":" + Case(case.family, case.op, case.shape, case.dtype,
                                {k: v for k, v in case.params.items() if k in TRACE_PARAMS}).id


def backend_of(row: pd.Series | dict[str, Any]) -> str:
    """The device kind a row ran on (``cuda`` or ``cpu``): its kernels are traced as that backend runs them."""
    return "cuda" if str(row.get("device") or "").startswith("cuda") else "cpu"


def trace_case(case: Case, backend: str = "cpu"):
    """The ``WorkloadGraph`` of one case as ``backend`` runs it (``PredictError`` if it
    cannot be built here)."""
    key = _trace_key(case, backend)
    got = _TRACES.get(key)
    if got is not None:
        return got
    if case.family in ("model", "framework"):
        g = _trace_model(case)
    elif case.family == "transfer":
        g = _transfer_graph(case)
    elif case.family == "collective":
        g = _collective_graph(case)
    else:
        from workloads.tracer import trace

        # scatter cases are traced on the CPU so the tracer sees the real indices (distinct targets)
        device = "cpu" if case.family == "scatter" else "meta"
        try:
            module, args, kwargs = case.module(device)
        except (ValueError, KeyError) as e:
            raise PredictError(f"{case.id}: cannot rebuild the case ({e})") from None
        # a fusion policy says itself which kernels ran (an engine's, not the framework's)
        g = trace(module, args if not kwargs else kwargs, backend=None if case.params.get("fusion") else backend)
    fusion = case.params.get("fusion")
    if fusion:
        from workloads.fusion import fuse

        g = fuse(g, fusion)
    _TRACES[key] = g
    return g


def _trace_model(case: Case):
    import tempfile
    from pathlib import Path

    from workloads import build

    s = case.shape
    model = case.params["model"]
    tmp = None
    if case.family == "framework":
        from validation.harness.models import config

        tmp = tempfile.TemporaryDirectory()
        model = str(Path(tmp.name) / "config.json")
        config(case.params["model"], tiny=True).to_json_file(model)
    try:
        return build(
            model,
            phase=case.params.get("phase", "decode"),
            batch=s.get("batch", 1),
            context=s.get("context", 1),
            prompt=s.get("prompt", 1),
            dtype=case.dtype,
            # the harness steps HF's DynamicCache (appends by concatenation) and keeps the
            # last position's logits in prefill: trace the same work
            kv="dynamic",
            logits="last",
        )
    finally:
        if tmp is not None:
            tmp.cleanup()


def _transfer_graph(case: Case):
    """A host<->device copy: one ``transfer`` op over the ``host`` tier's link."""
    from workloads.graph import WorkloadGraph
    from workloads.op import Access, Op

    nbytes = int(case.work()["bytes"])
    direction = case.params.get("direction", "h2d")
    g = WorkloadGraph(meta={"model": case.id})
    g.add(Op(0, "aten::copy_", "transfer", case.dtype, reads=[Access("src", nbytes, "activation")],
             writes=[Access("dst", nbytes, "output")],
             attrs=Transfer(tier="host", direction=direction, bytes=nbytes).attrs()))
    return g


def _collective_graph(case: Case):
    """One collective of ``bytes`` over ``ranks`` devices (as NCCL runs it, one kernel)."""
    from workloads.graph import WorkloadGraph
    from workloads.op import Access, Op

    nbytes, ranks = int(case.shape["bytes"]), int(case.shape["ranks"])
    g = WorkloadGraph(meta={"model": case.id})
    g.add(Op(0, f"c10d::{case.op}", "collective", case.dtype, reads=[Access("buf", nbytes, "activation")],
             writes=[Access("buf", nbytes, "activation")],
             # measured eagerly unless the row says it was replayed in a graph
             attrs=Collective(kind=case.op, n_ranks=ranks, bytes=nbytes,
                              launch=case.params.get("launch", "eager")).attrs()))
    return g


def resident_of(case: Case, graph) -> frozenset[str] | None:
    """Cache state a case was measured in: ``None`` (a benchmark loop: warm iff it fits),
    ``frozenset()`` (``params.cold``: caches flushed), or its activations only
    (``params.cold == "weights"``: the weights were last touched a model's worth of
    bytes ago, as in a layer stack, while the input was just written)."""
    cold = case.params.get("cold")
    if not cold:
        return None
    if cold == "weights":
        return frozenset(a.tensor for op in graph.ops for a in op.reads if a.role != "weight")
    return frozenset()


@dataclass
class RowSet:
    """The terms of many measured rows as one ``TermTable`` (``validation.predict`` prices it)."""

    table: TermTable
    #: per op of every row, in row order: index into ``table``, its row, its launches,
    #: whether its kernel comes from a vendor library (``workloads.op.LIBRARY_KINDS``)
    op_term: np.ndarray
    op_row: np.ndarray
    op_launches: np.ndarray
    op_library: np.ndarray
    rows: pd.DataFrame  # case_id, family, kind, measured_s, held_out, timing, spread
    serial: bool
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.rows)


def traced_rows(df: pd.DataFrame) -> tuple[list[tuple[pd.Series, Case, Any]], list[str]]:
    """(row, case, graph) for every ``ok`` row that can be traced here, and a note per one that cannot."""
    out, notes = [], []
    for _, r in df.iterrows():
        if str(r.get("status", "")) != "ok":
            continue
        try:
            case = case_of(r)
            timing_of(r)
            g = trace_case(case, backend_of(r))
        except (PredictError, ImportError) as e:
            notes.append(f"{r['case_id']}: not predicted ({e})")
            continue
        if not any(op.launches > 0 and op.kind != "view" for op in g.ops):
            notes.append(f"{r['case_id']}: traced no kernel-launching op")
            continue
        out.append((r, case, g))
    return out, notes


def build_rowset(traced: list[tuple[pd.Series, Case, Any]], system: SystemSpec,
                 kind_curves: dict[str, frozenset[str]] | None = None, notes: list[str] | None = None) -> RowSet:
    """Terms of ``traced`` rows on ``system``; ``kind_curves`` as ``costmodel.graph_terms``."""
    terms: list[OpTerms] = []
    op_term, op_row, op_launches, op_library = [], [], [], []
    recs = []
    st = Structure(system, 0, kind_curves)
    pl = Placement()
    for i, (r, case, g) in enumerate(traced):
        resident = resident_of(case, g)
        if resident is not None:
            ops = [op for op in g.ops if op.kind != "view"]
            base = len(terms)
            terms += [op_terms(op, st, pl, resident) for op in ops]
            idx = list(range(base, base + len(ops)))
        else:
            ops, group_of, table = graph_terms(g, system, pl, kind_curves)
            base = len(terms)
            terms += table.terms
            idx = [base + gi for gi in group_of]
        for op, j in zip(ops, idx, strict=True):
            op_term.append(j)
            op_row.append(i)
            op_launches.append(op.launches if op.kind != "view" else 0)
            op_library.append(op.kind in LIBRARY_KINDS)
        spread = _spread(r)
        recs.append({"case_id": r["case_id"], "family": r["family"], "kind": r["kind"],
                     "measured_s": float(r["median_s"]), "held_out": held_out(r.to_dict()),
                     "timing": timing_of(r), "spread": spread,
                     "pinned": bool(case.params.get("pinned", True))})
    return RowSet(TermTable(terms), np.array(op_term, dtype=np.int64), np.array(op_row, dtype=np.int64),
                  np.array(op_launches, dtype=float), np.array(op_library, dtype=bool), pd.DataFrame(recs), system.device.serial_dispatch.value,
                  list(notes or []))


def _spread(r: pd.Series) -> float:
    """Relative spread of a row's samples: ``(p90 - p10) / median`` (NaN when not recorded)."""
    try:
        return float((float(r["p90_s"]) - float(r["p10_s"])) / float(r["median_s"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return float("nan")
