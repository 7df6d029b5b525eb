"""One planning row: does (model, hardware, tp, batch, context) fit, and how fast is it?

Definitions (documented once, used by every column):

- **TTFT**: the simulated step time of a prefill of ``prompt`` tokens for ``batch``
  sequences (no queueing, no scheduler).
- **TPOT**: the simulated step time of one decode step with ``context`` tokens already
  cached, for ``batch`` sequences.
- **tokens/s per replica** = batch / TPOT (steady-state decode; prefill time is not
  amortised in). A replica is one tensor-parallel group of ``tp`` devices.
- **tokens/s per device** = per replica / tp; **per system** = per replica × replicas,
  with ``replicas = num_devices // tp`` (every device of the system serving).
- **cost per million output tokens** = price per *device*-hour / 3600 / (tokens/s per
  device) × 1e6: a price is what one GPU (or socket) costs per hour, as clouds quote it.
- **<tier>_needed_gib / <tier>_capacity_gib**: per device, the larger of the prefill and
  decode need; ``device`` is the device's main memory (HBM, GDDR, DRAM).
- **fits**: both the prefill and the decode step fit every memory tier
  (``simulator.footprint``) and ``tp <= num_devices``; otherwise ``reason`` says why,
  and the times are left empty (NaN) rather than simulated.
- **meets_slo**: fits, and TPOT <= the TPOT SLO, and TTFT <= the TTFT SLO (when given).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hw_models.spec import SystemSpec
from simulator import gc_paused
from simulator.footprint import GIB, footprint


def default_build(model: str, **kw: Any):
    from workloads import build

    return build(model, **kw)


def default_simulate(graph, system, **kw: Any) -> dict[str, Any]:
    from simulator import simulate

    return simulate(graph, system, **kw).summary()


@dataclass(frozen=True)
class Settings:
    """Everything a row needs besides its own coordinates; shipped to workers as is."""

    systems: dict[str, SystemSpec]
    prompt: int = 512
    dtype: str = "bf16"
    launch: str = "eager"
    #: which kernels run (workloads.fusion): none, compile or serving
    fusion: str = "none"
    placement: Any = None
    slo_tpot_ms: float | None = None
    slo_ttft_ms: float | None = None
    price_per_hour: dict[str, float] = field(default_factory=dict)
    build_fn: Callable[..., Any] = default_build
    simulate_fn: Callable[..., dict[str, Any]] = default_simulate
    #: system identity for caches: hardware id -> digest of the (possibly what-if) spec
    keys: dict[str, str] = field(default_factory=dict)


# Per-process caches. Graphs depend only on the workload; a prefill does not depend on
# the decode context, so one prefill serves every context of a sweep.
_GRAPHS: dict[tuple, Any] = {}
_PREFILL: dict[tuple, dict[str, Any]] = {}
_CACHE_LIMIT = 256


def _remember(cache: dict, key: tuple, make: Callable[[], Any]) -> Any:
    if key in cache:
        return cache[key]
    if len(cache) >= _CACHE_LIMIT:
        cache.pop(next(iter(cache)))
    cache[key] = value = make()
    return value


def graph(s: Settings, model: str, phase: str, batch: int, context: int):
    ctx = context if phase == "decode" else 0
    key = (s.build_fn, model, phase, batch, ctx, s.prompt, s.dtype, s.fusion)
    return _remember(
        _GRAPHS,
        key,
        lambda: s.build_fn(model, phase=phase, batch=batch, context=ctx, prompt=s.prompt, dtype=s.dtype,
                           fusion=s.fusion),
    )


def step(s: Settings, model: str, phase: str, batch: int, context: int, tp: int = 1):
    """The step for the sweep: a ``FamilyPoint`` of the model's parametric family (sharded
    for ``tp``) when there is one and the defaults build and simulate, else the traced
    graph (unsharded; ``simulate`` shards it)."""
    ctx = context if phase == "decode" else 0
    key = ("point", s.build_fn, s.simulate_fn, model, phase, batch, ctx, s.prompt, s.dtype, s.fusion, tp)
    if key in _GRAPHS:
        return _GRAPHS[key]
    pt = _point(s, model, phase, batch, ctx, tp)
    if pt is None:
        return graph(s, model, phase, batch, context)
    return _remember(_GRAPHS, key, lambda: pt)


def _point(s: Settings, model: str, phase: str, batch: int, ctx: int, tp: int):
    if s.build_fn is not default_build or s.simulate_fn is not default_simulate:
        return None
    from workloads import builder
    from workloads.steps import check_step

    req = builder.llm_request(model, phase, s.dtype, {})
    if req is None:
        return None
    length = ctx if phase == "decode" else s.prompt
    fam = builder.family(req, s.fusion, 1)
    if fam is None or not fam.covers(batch, length):
        return None
    check_step(phase, batch, ctx, s.prompt, fam.max_positions)  # what build would refuse
    if tp > 1:
        from workloads.tensor_parallel import check_degree

        check_degree(fam.arrays.at(batch, length, {}), tp)  # shard's one-line refusal, before any tracing
        fam = builder.family(req, s.fusion, tp)
        if fam is None:
            return None
    return fam.arrays.at(batch, length, {"batch": batch, "context": ctx, "prompt": s.prompt})


def clear_caches() -> None:
    _GRAPHS.clear()
    _PREFILL.clear()


def _sim(s: Settings, model: str, phase: str, batch: int, context: int, system: SystemSpec,
         tp: int) -> dict[str, Any]:
    """The summary of one simulated step: from the sharded family point when the step has
    one (``simulator.simulate_point``, the same model on arrays), else ``simulate_fn``."""
    from simulator import point_supported, simulate_point

    g = step(s, model, phase, batch, context, tp)
    if hasattr(g, "fa") and point_supported(g, s.placement):
        return simulate_point(g, system, launch=s.launch, tp=tp, placement=s.placement).summary()
    if hasattr(g, "fa"):
        g = graph(s, model, phase, batch, context)
    return s.simulate_fn(g, system, launch=s.launch, tp=tp, placement=s.placement)


def measured_share(summary: dict[str, Any], system: SystemSpec, dtype: str, launch: str) -> float:
    """Share of a decode step set by measured numbers (here or elsewhere): the rest are
    estimates or datasheet figures (``simulator.basis``, read from its terms)."""
    from simulator import basis

    return basis.measured_share(basis.basis_of_terms(summary.get("time_by_bound") or {}, system, dtype, launch,
                                                     kernels=float(summary.get("kernels") or 0))["shares"])


def evaluate(s: Settings, model: str, hw: str, tp: int, batch: int, context: int) -> dict[str, Any]:
    """The planning row for one configuration (see the module docstring for each column)."""
    system = s.systems[hw]
    row: dict[str, Any] = {
        "model": model,
        "hardware": hw,
        "tp": tp,
        "batch": batch,
        "context": context,
        "prompt": s.prompt,
        "dtype": s.dtype,
        "fusion": s.fusion,
        "launch": s.launch,
        "replicas": system.num_devices // tp,
    }
    nan = math.nan
    row.update(ttft_ms=nan, tpot_ms=nan, tokens_per_s=nan, tokens_per_s_per_device=nan)
    row.update(tokens_per_s_per_system=nan, bottleneck="", prefill_bottleneck="", cost_per_mtok=nan,
               measured_share=nan)
    try:
        return _evaluate(s, row, model, hw, tp, batch, context)
    except Exception as e:
        if not getattr(e, "user_facing", False):
            raise
        # e.g. a context longer than the model allows: this row cannot run, the sweep goes on
        return {**row, "fits": False, "reason": str(e), "meets_slo": False}


def _evaluate(
    s: Settings, row: dict, model: str, hw: str, tp: int, batch: int, context: int
) -> dict[str, Any]:
    system = s.systems[hw]
    dec_g = step(s, model, "decode", batch, context)
    pre_g = step(s, model, "prefill", batch, context)
    reasons = []
    if tp > system.num_devices:
        reasons.append(f"tp={tp} exceeds the {system.num_devices} device(s) of {hw}")
    fps = [footprint(g, system, s.placement, tp) for g in (pre_g, dec_g)]
    worst: dict[str, float] = {}
    main = system.device.main_memory.name
    for fp in fps:
        for name, t in fp.tiers.items():
            # device memory is "hbm" on one system and "gddr6" on another: one column for both
            col = "device" if name == main else name
            worst[col] = max(worst.get(col, 0.0), t.needed)
            row[f"{col}_capacity_gib"] = t.capacity / GIB
        if not fp.fits:
            phase = "prefill" if fp is fps[0] else "decode"
            reasons.append(f"{phase} {fp.reason}")
    for name, need in worst.items():
        row[f"{name}_needed_gib"] = need / GIB
    row["fits"] = not reasons
    row["reason"] = "; ".join(reasons)
    if row["fits"]:
        dec = _sim(s, model, "decode", batch, context, system, tp)
        key = (s.build_fn, s.simulate_fn, model, s.keys.get(hw, hw), tp, batch, s.prompt, s.dtype, s.launch, s.fusion)
        key += (repr(s.placement),)
        pre = _remember(_PREFILL, key, lambda: _sim(s, model, "prefill", batch, context, system, tp))
        tpot, ttft = float(dec["step_time_s"]), float(pre["step_time_s"])
        per_replica = batch / tpot
        row.update(
            ttft_ms=ttft * 1e3,
            tpot_ms=tpot * 1e3,
            tokens_per_s=per_replica,
            tokens_per_s_per_device=per_replica / tp,
            tokens_per_s_per_system=per_replica * row["replicas"],
            bottleneck=str(dec.get("bottleneck", "")),
            prefill_bottleneck=str(pre.get("bottleneck", "")),
            measured_share=measured_share(dec, system, s.dtype, s.launch),
        )
        price = s.price_per_hour.get(hw)
        if price is not None:
            row["cost_per_mtok"] = price / 3600.0 / row["tokens_per_s_per_device"] * 1e6
    row["meets_slo"] = bool(
        row["fits"]
        and (s.slo_tpot_ms is None or row["tpot_ms"] <= s.slo_tpot_ms)
        and (s.slo_ttft_ms is None or row["ttft_ms"] <= s.slo_ttft_ms)
    )
    return row


def evaluate_group(
    s: Settings, model: str, batch: int, context: int, pairs: list[tuple[str, int]]
) -> list[dict]:
    """Rows for every (hardware, tp) pair sharing one workload shape (one graph build)."""
    with gc_paused():
        return [evaluate(s, model, hw, tp, batch, context) for hw, tp in pairs]


def bisect(lo: int, hi: int, on_low_side: Callable[[int], bool]) -> tuple[int, int]:
    """Narrow ``lo < hi`` to neighbours across the one place a monotone test flips;
    ``on_low_side(n)`` says ``n`` answers as ``lo`` does."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if on_low_side(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def search_max_batch(
    s: Settings, model: str, hw: str, tp: int, context: int, limit: int = 4096
) -> dict[str, Any]:
    """The row of the largest batch that fits and meets the SLOs (doubling, then bisection).

    Relies on feasibility and SLOs being monotone in batch (more sequences never need
    less memory or a shorter step). When batch 1 already fails, its row is returned, so
    the reason is shown. ``max_batch_searched`` records ``limit`` being reached.
    """
    with gc_paused():
        return _search(s, model, hw, tp, context, limit)


def _search(s: Settings, model: str, hw: str, tp: int, context: int, limit: int) -> dict[str, Any]:
    rows: dict[int, dict] = {}

    def ok(b: int) -> bool:
        if b not in rows:
            rows[b] = evaluate(s, model, hw, tp, b, context)
        return rows[b]["meets_slo"]

    if not ok(1):
        best = rows[1]
    else:
        lo, b = 1, 2
        while b <= limit and ok(b):
            lo, b = b, b * 2
        # b failed, or passed the limit (then nothing above the limit is looked at)
        lo, _ = bisect(lo, b if b <= limit else limit + 1, ok)
        best = rows[lo]
    best = dict(best)
    best["max_batch_searched"] = len(rows)
    best["batch_limit_hit"] = best["batch"] >= limit
    return best
