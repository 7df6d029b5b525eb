"""Planning rows for pipeline- and expert-parallel layouts (``roofsim plan --pp --ep --nodes``).

The single-device sweep (``roofsim.planner.evaluate``) prices TP-only configurations
from parametric families. A layout with pipeline stages or expert-parallel ranks runs
``simulator.scaleout.simulate_scaled`` instead, one row per (model, hardware, tp, pp, ep,
batch, context), with the same columns: ``batch`` is the whole layout's sequences, split
into micro-batches (one per stage, fewer when the batch cannot be cut that finely) and
over the EP ranks; ``ttft_ms`` is one prefill of the batch through the pipeline,
``tpot_ms`` the interval between a sequence's tokens when the engine overlaps
consecutive steps (``steady_step_s``), ``tokens_per_s`` the batch over that interval and
``tokens_per_s_per_device`` that over the ``tp x pp x ep`` devices. A layout the system
or model cannot take, or a stage that does not fit its device, is a row with ``fits``
false and the reason, as the single-device sweep lists a ``tp`` above the device count.
"""

from __future__ import annotations

import math
import warnings
from itertools import product
from typing import Any

import pandas as pd

GIB = 2**30


def microbatches(batch: int, pp: int, ep: int) -> int | None:
    """Micro-batches per step: the most up to ``pp`` that cut ``batch / ep`` evenly."""
    if batch % ep:
        return None
    per = batch // ep
    return max(k for k in range(1, pp + 1) if per % k == 0)


def plan_scaled(models: list[str], hardware: list[str], *, tp: list[int], pp: list[int], ep: list[int],
                nodes: int | None, batch: list[int], context: list[int], prompt: int, dtype: str, launch: str,
                fusion: str, slo_tpot_ms: float | None = None, slo_ttft_ms: float | None = None,
                price_per_hour: dict[str, float] | None = None) -> pd.DataFrame:
    from hw_models.catalog import load
    from simulator.layout import with_nodes

    rows = []
    for model, hw, t, p, e, b, ctx in product(models, hardware, tp, pp, ep, batch, context):
        system = load(hw)
        n = nodes if nodes is not None else max(1, math.ceil(t * p * e / system.num_devices))
        row: dict[str, Any] = {"model": model, "hardware": hw, "tp": t, "pp": p, "ep": e, "nodes": n,
                               "devices": t * p * e, "batch": b, "context": ctx, "prompt": prompt, "dtype": dtype,
                               "fusion": fusion, "launch": launch, "fits": False, "reason": "", "meets_slo": False,
                               "ttft_ms": math.nan, "tpot_ms": math.nan, "tokens_per_s": math.nan,
                               "tokens_per_s_per_device": math.nan, "tokens_per_s_per_system": math.nan,
                               "bottleneck": "", "cost_per_mtok": math.nan}
        m = microbatches(b, p, e)
        if m is None:
            rows.append({**row, "reason": f"batch {b} is not a multiple of ep {e}"})
            continue
        micro = b // (m * e)
        try:
            sysn = with_nodes(system, n)
            res = {}
            for phase in ("decode", "prefill"):
                res[phase] = _run(model, phase, micro, ctx, prompt, dtype, fusion, sysn, t, p, e, m, launch)
        except Exception as exc:
            if not getattr(exc, "user_facing", False):
                raise
            rows.append({**row, "reason": str(exc).splitlines()[0]})
            continue
        dec, pre = res["decode"], res["prefill"]
        need = max(sum(mem.values()) for r in (dec, pre) for mem in r.memory)
        row["device_needed_gib"] = need / GIB
        row["device_capacity_gib"] = dec.capacity / GIB
        if need > dec.capacity:
            rows.append({**row, "reason": f"a stage needs {need / GIB:.1f} GiB per device, has {dec.capacity / GIB:.1f}"})
            continue
        tpot = dec.totals["steady_step_s"]
        per_layout = b / tpot
        row.update(fits=True, ttft_ms=pre.step_time_s * 1e3, tpot_ms=tpot * 1e3, tokens_per_s=per_layout,
                   tokens_per_s_per_device=per_layout / (t * p * e),
                   tokens_per_s_per_system=per_layout * max(1, (sysn.num_devices * n) // (t * p * e)),
                   bottleneck=dec.bottleneck, bubble_share=dec.totals["bubble_share"])
        price = (price_per_hour or {}).get(hw)
        if price is not None:
            row["cost_per_mtok"] = price / 3600.0 / row["tokens_per_s_per_device"] * 1e6
        row["meets_slo"] = bool((slo_tpot_ms is None or row["tpot_ms"] <= slo_tpot_ms)
                                and (slo_ttft_ms is None or row["ttft_ms"] <= slo_ttft_ms))
        rows.append(row)
    return pd.DataFrame(rows)


def _run(model, phase, micro, ctx, prompt, dtype, fusion, system, tp, pp, ep, m, launch):
    from simulator.scaleout import simulate_scaled
    from workloads import build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = build(model, phase=phase, batch=micro, context=ctx, prompt=prompt, dtype=dtype, fusion=fusion)
        return simulate_scaled(g, system, tp=tp, pp=pp, ep=ep, microbatches=m, launch=launch)
