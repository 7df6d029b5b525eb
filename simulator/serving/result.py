"""``ServeResult``: what a serving simulation did, request by request and step by step.

Per request (``requests``, one row each; times in seconds from the start):
``arrival_s``, ``schedule_s`` (first scheduled), ``first_token_s``, ``finish_s``,
``ttft_s = first_token_s - arrival_s``, ``tpot_s = (finish_s - first_token_s) / (output - 1)``
(empty for one-token outputs), ``e2e_s = finish_s - arrival_s``, ``queue_s = schedule_s -
arrival_s``, tokens, ``preemptions``, the replica (and decode replica when disaggregated).

Per step (``steps``): replica, start, duration, kind (prefill, decode, mixed), prefill
tokens and sequences, decode sequences, KV blocks used and total, sequences running,
waiting, and outstanding on the replica when the step started.

Summary (``summary()``): P50/P90/P99 (and mean) of TTFT, TPOT and E2E; throughput
(finished requests and output tokens per second, from the first arrival to the last
finish); goodput (requests per second meeting both SLOs, when given); mean batch size
(sequences per step, weighted by step time), KV use (mean and peak, time-weighted), and
busy share of the replicas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

STEP_COLUMNS = ("replica", "start_s", "duration_s", "kind", "prefill_tokens", "prefill_seqs", "decode_seqs",
                "kv_used_blocks", "kv_total_blocks", "running", "waiting", "outstanding")
PCTS = (50, 90, 99)


def _pct(x: np.ndarray, q: float) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else math.nan


@dataclass
class ServeResult:
    requests: pd.DataFrame
    steps: pd.DataFrame
    config: dict[str, Any]
    memory: dict[str, float]
    wall_s: float = 0.0
    transfers: pd.DataFrame = field(default_factory=pd.DataFrame)

    @staticmethod
    def build(reqs, log, config: dict, memory: dict, transfers=()) -> ServeResult:
        n = len(reqs)
        arr = np.fromiter((r.arrival for r in reqs), float, n)
        first = np.fromiter((r.t_first for r in reqs), float, n)
        fin = np.fromiter((r.t_finish for r in reqs), float, n)
        sched = np.fromiter((r.t_schedule for r in reqs), float, n)
        out = np.fromiter((r.output for r in reqs), np.int64, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpot = np.where(out > 1, (fin - first) / (out - 1), np.nan)
        df = pd.DataFrame({
            "id": np.fromiter((r.id for r in reqs), np.int64, n),
            "arrival_s": arr,
            "schedule_s": sched,
            "first_token_s": first,
            "finish_s": fin,
            "ttft_s": first - arr,
            "tpot_s": tpot,
            "e2e_s": fin - arr,
            "queue_s": sched - arr,
            "prompt_tokens": np.fromiter((r.prompt for r in reqs), np.int64, n),
            "output_tokens": out,
            "preemptions": np.fromiter((r.preemptions for r in reqs), np.int64, n),
            "replica": np.fromiter((r.replica for r in reqs), np.int64, n),
            "decode_replica": np.fromiter((r.decode_replica for r in reqs), np.int64, n),
            "kv_transfer_s": np.fromiter((r.t_transfer for r in reqs), float, n),
        })
        steps = pd.DataFrame.from_records(log, columns=list(STEP_COLUMNS)) if log else pd.DataFrame(
            columns=list(STEP_COLUMNS))
        tr = pd.DataFrame.from_records(list(transfers), columns=["id", "replica", "start_s", "duration_s", "bytes"])
        return ServeResult(df, steps, config, memory, transfers=tr)

    # -- figures of merit ----------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        df, st = self.requests, self.steps
        out: dict[str, Any] = {"requests": int(len(df))}
        for col, name in (("ttft_s", "ttft"), ("tpot_s", "tpot"), ("e2e_s", "e2e")):
            x = df[col].to_numpy(dtype=float)
            for q in PCTS:
                out[f"p{q}_{name}_ms"] = _pct(x, q) * 1e3
            fin = x[np.isfinite(x)]
            out[f"mean_{name}_ms"] = float(fin.mean()) * 1e3 if len(fin) else math.nan
        span = float(df["finish_s"].max() - df["arrival_s"].min()) if len(df) else 0.0
        out["duration_s"] = span
        out["throughput_rps"] = len(df) / span if span > 0 else math.nan
        out["output_tokens_per_s"] = float(df["output_tokens"].sum()) / span if span > 0 else math.nan
        ok = np.ones(len(df), dtype=bool)
        slo_t, slo_p = self.config.get("slo_ttft_ms"), self.config.get("slo_tpot_ms")
        if slo_t is not None:
            ok &= (df["ttft_s"].to_numpy() * 1e3 <= slo_t)
        if slo_p is not None:
            tp = df["tpot_s"].to_numpy() * 1e3
            ok &= ~(tp > slo_p)  # NaN (one-token outputs) has no TPOT to miss
        out["slo_attainment"] = float(ok.mean()) if len(df) else math.nan
        out["goodput_rps"] = float(ok.sum()) / span if span > 0 else math.nan
        out["preemptions"] = int(df["preemptions"].sum())
        if len(st):
            w = st["duration_s"].to_numpy(dtype=float)
            seqs = (st["prefill_seqs"] + st["decode_seqs"]).to_numpy(dtype=float)
            kv = (st["kv_used_blocks"] / st["kv_total_blocks"]).to_numpy(dtype=float)
            tot = w.sum()
            out["mean_batch_seqs"] = float((seqs * w).sum() / tot) if tot else math.nan
            out["mean_kv_use"] = float((kv * w).sum() / tot) if tot else math.nan
            out["peak_kv_use"] = float(kv.max())
            reps = int(self.config.get("num_replicas", 1))
            out["busy_share"] = float(tot / (span * reps)) if span > 0 else math.nan
            out["steps"] = int(len(st))
        out["wall_s"] = self.wall_s
        return out

    def meets(self, slo_p99_ttft_ms: float | None = None, slo_p99_tpot_ms: float | None = None) -> bool:
        s = self.summary()
        ok = True
        if slo_p99_ttft_ms is not None:
            ok &= s["p99_ttft_ms"] <= slo_p99_ttft_ms
        if slo_p99_tpot_ms is not None:
            ok &= not (s["p99_tpot_ms"] > slo_p99_tpot_ms)
        return bool(ok)

    def in_system(self, t0: float, t1: float) -> float:
        """Time-average number of requests in the system over [t0, t1] from the replicas'
        own step records (outstanding at each step start, held for the step): what the
        schedulers saw, independent of the per-request timestamps."""
        st = self.steps
        total = 0.0
        for _, g in st.groupby("replica"):
            s = g["start_s"].to_numpy(float)
            d = g["duration_s"].to_numpy(float)
            n = g["outstanding"].to_numpy(float)
            lo = np.clip(s, t0, t1)
            hi = np.clip(s + d, t0, t1)
            total += float((n * (hi - lo)).sum())
        return total / (t1 - t0)

    # -- outputs -------------------------------------------------------------------------
    def timeline(self, bins: int = 200) -> pd.DataFrame:
        """Batch size (sequences per step) and KV use over time, averaged per time bin."""
        st = self.steps
        if st.empty:
            return pd.DataFrame(columns=["t_s", "batch_seqs", "kv_use", "waiting"])
        end = float((st["start_s"] + st["duration_s"]).max())
        edges = np.linspace(0.0, end, bins + 1)
        mid = (st["start_s"] + st["duration_s"] / 2).to_numpy(float)
        idx = np.clip(np.searchsorted(edges, mid, side="right") - 1, 0, bins - 1)
        w = st["duration_s"].to_numpy(float)
        seqs = (st["prefill_seqs"] + st["decode_seqs"]).to_numpy(float)
        kv = (st["kv_used_blocks"] / st["kv_total_blocks"]).to_numpy(float)
        wait = st["waiting"].to_numpy(float)
        sw = np.bincount(idx, w, bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return pd.DataFrame({
                "t_s": (edges[:-1] + edges[1:]) / 2,
                "batch_seqs": np.bincount(idx, seqs * w, bins) / sw,
                "kv_use": np.bincount(idx, kv * w, bins) / sw,
                "waiting": np.bincount(idx, wait * w, bins) / sw,
            })

    def perfetto(self) -> dict[str, Any]:
        """Chrome/Perfetto trace: one track per replica with its steps (args: tokens and
        sequences), counters of batch size, KV use and queue length, and KV transfers."""
        ev: list[dict[str, Any]] = []
        for rep in sorted(self.steps["replica"].unique().tolist()) if len(self.steps) else []:
            ev.append({"ph": "M", "name": "process_name", "pid": int(rep), "args": {"name": f"replica {rep}"}})
            ev.append({"ph": "M", "name": "thread_name", "pid": int(rep), "tid": 0, "args": {"name": "engine steps"}})
        for row in self.steps.itertuples(index=False):
            ts = row.start_s * 1e6
            ev.append({"ph": "X", "name": row.kind, "pid": int(row.replica), "tid": 0, "ts": ts,
                       "dur": row.duration_s * 1e6,
                       "args": {"prefill_tokens": int(row.prefill_tokens), "prefill_seqs": int(row.prefill_seqs),
                                "decode_seqs": int(row.decode_seqs), "waiting": int(row.waiting)}})
            ev.append({"ph": "C", "name": "batch", "pid": int(row.replica), "ts": ts,
                       "args": {"sequences": int(row.prefill_seqs + row.decode_seqs), "waiting": int(row.waiting)}})
            ev.append({"ph": "C", "name": "kv use", "pid": int(row.replica), "ts": ts,
                       "args": {"blocks": int(row.kv_used_blocks)}})
        for row in self.transfers.itertuples(index=False):
            ev.append({"ph": "X", "name": f"kv transfer r{int(row.id)}", "pid": int(row.replica), "tid": 1,
                       "ts": row.start_s * 1e6, "dur": row.duration_s * 1e6, "args": {"bytes": float(row.bytes)}})
        return {"traceEvents": ev, "displayTimeUnit": "ms",
                "otherData": {"roofsim": "serve", **{k: str(v) for k, v in self.config.items()}}}

    def summary_json(self) -> str:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (np.floating, np.integer)):
                return clean(v.item())
            return v

        doc = {"config": {k: clean(v) for k, v in self.config.items()},
               "memory": {k: clean(v) for k, v in self.memory.items()},
               "summary": {k: clean(v) for k, v in self.summary().items()}}
        return json.dumps(doc, indent=2)
