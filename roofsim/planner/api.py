"""Capacity planning as a pandas DataFrame: ``plan(...)``, ``best(...)``, ``sensitivity(...)``.

See ``roofsim.planner.evaluate`` for what each column means.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from hw_models import catalog
from hw_models.spec import SystemSpec
from roofsim.errors import UserError
from simulator import gc_paused

from . import evaluate as ev
from .sweep import run_tasks
from .whatif import apply_whatif, parse_scale

SORT = ["model", "hardware", "tp", "batch", "context"]
DEFAULT_TP = (1, 2, 4, 8)
DEFAULT_BATCH = (1, 8, 32, 128)
DEFAULT_CONTEXT = (2048,)


def _as_list(x: Any, name: str, default: Sequence) -> list:
    if x is None:
        return list(default)
    if isinstance(x, (str, int)):
        x = [x]
    out = list(x)
    if not out:
        raise UserError(f"{name}: needs at least one value")
    return out


def _positive_ints(xs: Iterable, name: str) -> list[int]:
    out = []
    for x in xs:
        try:
            v = int(x)
        except (TypeError, ValueError):
            raise UserError(f"{name}: {x!r} is not a whole number") from None
        if v < 1 or v != float(x):
            raise UserError(f"{name}: {x!r} must be a whole number >= 1")
        out.append(v)
    return sorted(set(out))


def _slo(v: float | None, name: str) -> float | None:
    if v is None:
        return None
    if not float(v) > 0:
        raise UserError(f"{name} must be > 0 ms, got {v}")
    return float(v)


def _placement(p: Any) -> Any:
    if p is None or not isinstance(p, dict):
        return p
    from simulator.placement import Placement

    try:
        return Placement(**p)
    except TypeError:
        raise UserError(
            f"placement: unknown role in {sorted(p)}; allowed: weights, kv_cache, activations"
        ) from None


def systems_for(
    hardware: Sequence[str | SystemSpec], set_overrides: Iterable[str] = (), scale: Any = None
) -> dict[str, SystemSpec]:
    """Load each hardware id (or spec), then apply what-if ``--set`` and ``--scale``."""
    systems: dict[str, SystemSpec] = {}
    for h in hardware:
        spec = catalog.load(h)
        systems[h if isinstance(h, str) else spec.id] = spec
    return apply_whatif(systems, set_overrides or (), parse_scale(scale))


def _keys(systems: dict[str, SystemSpec]) -> dict[str, str]:
    return {hw: hashlib.sha1(s.model_dump_json().encode()).hexdigest()[:16] for hw, s in systems.items()}


def settings(
    hardware: Sequence[str | SystemSpec],
    *,
    prompt: int = 512,
    dtype: str = "bf16",
    launch: str = "eager",
    fusion: str = "none",
    placement: Any = None,
    slo_tpot_ms: float | None = None,
    slo_ttft_ms: float | None = None,
    price_per_hour: dict[str, float] | None = None,
    set_overrides: Iterable[str] = (),
    scale: Any = None,
    build_fn: Callable | None = None,
    simulate_fn: Callable | None = None,
) -> ev.Settings:
    """Validated ``Settings`` for a run (all bad input raises one-line ``UserError``)."""
    if launch not in ("eager", "graph"):
        raise UserError(f"--launch must be eager or graph, got {launch!r}")
    from workloads.fusion import policy

    policy(fusion)
    systems = systems_for(hardware, set_overrides, scale)
    prices = dict(price_per_hour or {})
    for hw, price in prices.items():
        if hw not in systems:
            raise UserError(
                f"--price-per-hour: {hw!r} is not a hardware of this run; the run has: {', '.join(systems)}"
            )
        if not (math.isfinite(float(price)) and float(price) >= 0):
            raise UserError(f"--price-per-hour {hw}={price}: must be a finite number >= 0")
    from simulator.precision_check import check
    from workloads.precision import parse

    prec = parse(dtype, "--precision")
    for spec in systems.values():
        check(spec, prec)  # fp8 on a system without fp8 units is bad input for the whole run
    dtype = str(prec)
    placement = _placement(placement)
    if placement is not None and hasattr(placement, "validate"):
        for s in systems.values():
            placement.validate(s)
    return ev.Settings(
        systems=systems,
        prompt=_positive_ints([prompt], "--prompt")[0],
        dtype=dtype,
        launch=launch,
        fusion=fusion,
        placement=placement,
        slo_tpot_ms=_slo(slo_tpot_ms, "--slo-tpot-ms"),
        slo_ttft_ms=_slo(slo_ttft_ms, "--slo-ttft-ms"),
        price_per_hour={k: float(v) for k, v in prices.items()},
        build_fn=build_fn or ev.default_build,
        simulate_fn=simulate_fn or ev.default_simulate,
        keys=_keys(systems),
    )


def plan(
    models: str | Sequence[str],
    hardware_ids: str | Sequence[str | SystemSpec],
    *,
    tp: Sequence[int] | int | None = None,
    batch: Sequence[int] | int | None = None,
    max_batch: bool = False,
    batch_limit: int = 4096,
    context: Sequence[int] | int | None = None,
    workers: int = 1,
    dask: Any = None,
    progress: bool = True,
    **options: Any,
) -> pd.DataFrame:
    """One row per configuration (model × hardware × tp × batch × context), sorted.

    ``options`` go to ``settings`` as they are (prompt, dtype, launch, fusion, placement,
    SLOs, prices, what-ifs, ``build_fn``/``simulate_fn``): its signature holds their defaults.

    With ``max_batch=True`` the batch axis is searched instead: one row per (model,
    hardware, tp, context) at the largest batch that fits and meets the SLOs (up to
    ``batch_limit``). Infeasible configurations are kept with their ``reason``.
    ``workers > 1`` runs tasks in local processes; ``dask`` (a scheduler address or a
    ``distributed.Client``) runs them on a Dask cluster. ``build_fn``/``simulate_fn``
    replace ``workloads.build`` and ``simulate(...).summary()`` (they must be picklable,
    i.e. top-level functions, to run in workers).
    """
    models = _as_list(models, "models", ())
    hardware = _as_list(hardware_ids, "--hardware", ())
    tps = _positive_ints(_as_list(tp, "--tp", DEFAULT_TP), "--tp")
    contexts = _positive_ints(_as_list(context, "--context", DEFAULT_CONTEXT), "--context")
    batches = _positive_ints(_as_list(batch, "--batch", DEFAULT_BATCH), "--batch")
    if int(workers) < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if max_batch and not (isinstance(batch_limit, int) and batch_limit >= 1):
        raise UserError(f"--batch-limit must be a whole number >= 1, got {batch_limit}")
    s = settings(hardware, **options)
    with gc_paused():  # one collection after the sweep, not one per task (see simulator.gc_paused)
        return _plan(s, models, tps, contexts, batches, max_batch, batch_limit, workers, dask, progress)


def _plan(s: ev.Settings, models: list, tps: list, contexts: list, batches: list, max_batch: bool,
          batch_limit: int, workers: int, dask: Any, progress: bool) -> pd.DataFrame:
    for m in models:
        # a model that cannot be built at all is bad input; a shape it cannot take is a row
        ev.step(s, m, "decode", 1, 1)
    pairs = [(hw, t) for hw in s.systems for t in tps]
    if max_batch:
        tasks = [
            (ev.search_max_batch, (s, m, hw, t, c, batch_limit))
            for m in models
            for c in contexts
            for hw, t in pairs
        ]
        rows = run_tasks(tasks, workers=int(workers), dask=dask, progress=progress)
    else:
        tasks = [(ev.evaluate_group, (s, m, b, c, pairs)) for m in models for c in contexts for b in batches]
        rows = [
            r for group in run_tasks(tasks, workers=int(workers), dask=dask, progress=progress) for r in group
        ]
    df = pd.DataFrame(rows)
    df = df.sort_values(SORT, kind="stable").reset_index(drop=True)
    df.attrs["slo_tpot_ms"], df.attrs["slo_ttft_ms"] = s.slo_tpot_ms, s.slo_ttft_ms
    df.attrs["sources"] = {hw: _whatif_sources(spec) for hw, spec in s.systems.items()}
    return df


def _whatif_sources(spec: SystemSpec) -> list[str]:
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if isinstance(obj.get("source"), str) and obj["source"].startswith("what-if"):
                found.append(obj["source"])
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(spec.model_dump())
    return sorted(set(found))


def best(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, hardware): the configuration meeting the SLOs with the most tokens/s per
    device (the lowest cost per token), ties to fewer devices then smaller batch; a
    hardware with none keeps one row saying so."""
    out = []
    for (m, hw), g in df.groupby(["model", "hardware"], sort=True):
        ok = g[g["meets_slo"]]
        if ok.empty:
            out.append({"model": m, "hardware": hw, "meets_slo": False, "reason": _none_reason(g)})
            continue
        ok = ok.assign(_neg=-ok["tokens_per_s_per_device"]).sort_values(["_neg", "tp", "batch", "context"])
        out.append(ok.drop(columns="_neg").iloc[0].to_dict())
    return pd.DataFrame(out)


def _none_reason(g: pd.DataFrame) -> str:
    if not g["fits"].any():
        return "no configuration fits: " + str(g["reason"].iloc[0])
    return "no feasible configuration meets the SLOs"
