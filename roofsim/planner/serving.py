"""Planning against P99 SLOs at a request rate: which hardware x TP x replicas x scheduler
is the cheapest that serves ``qps`` requests/s of this traffic with P99 TTFT and P99 TPOT
under the SLOs? Every candidate is a request-level simulation (``simulator.serving``).

For each (hardware, tp, scheduler) the fewest replicas meeting the SLOs is searched
(doubling, then bisection; more replicas never serve the same traffic worse under these
routers) up to ``max_replicas``, or each of ``replicas`` is simulated when given. One row per
simulation: P50/P99 TTFT and TPOT, throughput, devices (``tp x replicas``), cost per hour
(``price per device-hour x devices``; devices when no price is given), whether it meets
the SLOs, or why it cannot run. ``best_serving`` picks the cheapest row meeting the SLOs.
A (hardware, tp, scheduler) search is one task: in this process, local workers or Dask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from roofsim.errors import UserError

from .sweep import run_tasks

COLUMNS = ["model", "hardware", "tp", "scheduler", "replicas", "devices", "p50_ttft_ms", "p99_ttft_ms",
           "p50_tpot_ms", "p99_tpot_ms", "throughput_rps", "mean_kv_use", "cost_per_hour", "meets_slo", "reason"]


def evaluate_serving(cfg, traffic, slo_ttft: float | None, slo_tpot: float | None, price: float | None) -> dict:
    """One row: simulate ``cfg`` on ``traffic`` (arrival, prompt, output arrays)."""
    from simulator.serving import serve

    row: dict[str, Any] = {"model": cfg.model, "hardware": cfg.hardware, "tp": cfg.tp, "scheduler": cfg.scheduler,
                           "replicas": cfg.replicas, "devices": cfg.tp * cfg.replicas}
    row["cost_per_hour"] = price * row["devices"] if price is not None else math.nan
    try:
        res = serve(cfg, *traffic)
    except Exception as e:
        if not getattr(e, "user_facing", False):
            raise
        return {**row, "meets_slo": False, "reason": str(e)}
    s = res.summary()
    row.update({k: s[k] for k in ("p50_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "p99_tpot_ms", "throughput_rps",
                                  "mean_kv_use")})
    ok = (slo_ttft is None or s["p99_ttft_ms"] <= slo_ttft) and (slo_tpot is None or not s["p99_tpot_ms"] > slo_tpot)
    miss = []
    if slo_ttft is not None and s["p99_ttft_ms"] > slo_ttft:
        miss.append(f"P99 TTFT {s['p99_ttft_ms']:.0f} ms > {slo_ttft:g}")
    if slo_tpot is not None and s["p99_tpot_ms"] > slo_tpot:
        miss.append(f"P99 TPOT {s['p99_tpot_ms']:.1f} ms > {slo_tpot:g}")
    row["meets_slo"] = bool(ok)
    row["reason"] = "; ".join(miss)
    return row


def search_replicas(cfg, traffic, slo_ttft, slo_tpot, price, replicas: Sequence[int] | None,
                    max_replicas: int) -> list[dict]:
    """Rows for ``replicas`` given, else the searched fewest replicas meeting the SLOs."""
    from simulator import gc_paused

    from .evaluate import bisect

    with gc_paused():
        if replicas:
            return [evaluate_serving(replace(cfg, replicas=int(r)), traffic, slo_ttft, slo_tpot, price)
                    for r in replicas]
        rows: dict[int, dict] = {}

        def ok(r: int) -> bool:
            if r not in rows:
                rows[r] = evaluate_serving(replace(cfg, replicas=r), traffic, slo_ttft, slo_tpot, price)
            return rows[r]["meets_slo"]

        r = 1
        while r <= max_replicas and not ok(r):
            if "p99_ttft_ms" not in rows[r]:
                return [rows[r]]  # a replica that cannot run at all: more of them do not help
            r *= 2
        if r > max_replicas:
            top = max(rows)
            rows[top]["reason"] = (rows[top]["reason"] + f"; not met with up to {max_replicas} replicas").lstrip("; ")
            return [rows[k] for k in sorted(rows)]
        # r // 2 fails (or is 0), r meets; the rows the search evaluates are the answer
        bisect(r // 2, r, lambda n: not ok(n))
        return [rows[k] for k in sorted(rows)]


def plan_serving(model: str, hardware: Sequence[str], *, qps: float, traffic=None, tp: Sequence[int] = (1, 2, 4, 8),
                 schedulers: Sequence[str] = ("continuous",), replicas: Sequence[int] | None = None,
                 max_replicas: int = 64, slo_p99_ttft_ms: float | None = None,
                 slo_p99_tpot_ms: float | None = None, price_per_hour: dict[str, float] | None = None,
                 base=None, workers: int = 1, dask: Any = None, progress: bool = True) -> pd.DataFrame:
    """Every simulated configuration as a row (see the module docstring).

    ``traffic`` is (arrival, prompt, output) arrays (``simulator.serving.generate``);
    ``base`` a ``ServeConfig`` whose engine settings (fusion, launch, max_num_seqs, ...) each
    candidate takes, with its own hardware, tp, scheduler and replicas.
    """
    from hw_models import catalog
    from simulator.serving import ServeConfig

    if slo_p99_ttft_ms is None and slo_p99_tpot_ms is None:
        raise UserError("--qps needs --slo-p99-ttft-ms or --slo-p99-tpot-ms: the SLOs to plan against")
    for v, n in ((slo_p99_ttft_ms, "--slo-p99-ttft-ms"), (slo_p99_tpot_ms, "--slo-p99-tpot-ms")):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UserError(f"{n} must be > 0 ms, got {v}")
    if not isinstance(max_replicas, int) or max_replicas < 1:
        raise UserError(f"--max-replicas must be a whole number >= 1, got {max_replicas}")
    prices = dict(price_per_hour or {})
    for hw in prices:
        if hw not in hardware:
            raise UserError(f"--price-per-hour: {hw!r} is not a hardware of this run; the run has: {', '.join(hardware)}")
    base = base or ServeConfig(model=model, hardware=hardware[0])
    base.check()
    for s in schedulers:
        replace(base, scheduler=s).check()
    tasks = []
    for hw in hardware:
        spec = catalog.load(hw)  # an unknown id is bad input, not a row
        for t in tp:
            for s in schedulers:
                cfg = replace(base, model=model, hardware=hw, tp=int(t), scheduler=s, replicas=1,
                              disaggregate=None)
                if t > spec.num_devices:
                    tasks.append((_refused, (cfg, f"tp={t} exceeds the {spec.num_devices} device(s) of {hw}",
                                             prices.get(hw))))
                    continue
                tasks.append((search_replicas, (cfg, traffic, slo_p99_ttft_ms, slo_p99_tpot_ms, prices.get(hw),
                                                list(replicas) if replicas else None, max_replicas)))
    groups = run_tasks(tasks, workers=int(workers), dask=dask, progress=progress)
    df = pd.DataFrame([r for g in groups for r in g])
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = math.nan
    df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]
    df = df.sort_values(["hardware", "tp", "scheduler", "replicas"], kind="stable").reset_index(drop=True)
    df.attrs.update(qps=qps, slo_p99_ttft_ms=slo_p99_ttft_ms, slo_p99_tpot_ms=slo_p99_tpot_ms)
    return df


def _refused(cfg, reason: str, price) -> list[dict]:
    return [{"model": cfg.model, "hardware": cfg.hardware, "tp": cfg.tp, "scheduler": cfg.scheduler, "replicas": 0,
             "devices": 0, "cost_per_hour": math.nan, "meets_slo": False, "reason": reason}]


def best_serving(df: pd.DataFrame) -> pd.DataFrame:
    """The cheapest configuration meeting the SLOs (cost per hour, else devices), then per
    hardware its cheapest; an empty frame when none does."""
    ok = df[df["meets_slo"]]
    if ok.empty:
        return ok
    key = ok["cost_per_hour"].where(ok["cost_per_hour"].notna(), ok["devices"].astype(float))
    ok = ok.assign(_key=key).sort_values(["_key", "devices", "p99_tpot_ms"], kind="stable")
    return ok.groupby("hardware", sort=False).head(1).drop(columns="_key").reset_index(drop=True)
