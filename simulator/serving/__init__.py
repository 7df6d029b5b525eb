"""Request-level serving simulation: traffic, schedulers, a paged KV cache, replicas behind a
router, prefill/decode disaggregation and speculative decoding, in simpy, each engine step
timed by ``simulator.stepmodel.StepModel``.

``serve(config, arrival=..., prompt=..., output=...)`` or ``serve(config, traffic=...)`` runs
one simulation and returns a ``ServeResult`` (per-request and per-step tables, summary,
Perfetto trace). See ``simulator.serving.cluster`` for the model of a replica and
``simulator.serving.schedulers`` for the policies (and ``register_scheduler``).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from .cluster import ROUTERS, ServeConfig, ServeError, Simulation, SpecConfig
from .result import ServeResult
from .schedulers import SCHEDULERS, Scheduler, SchedulerConfig, register_scheduler
from .traffic import Arrivals, Lengths, generate, parse_lengths, read_trace

__all__ = ["Arrivals", "Lengths", "ROUTERS", "SCHEDULERS", "Scheduler", "SchedulerConfig", "ServeConfig",
           "ServeError", "ServeResult", "SpecConfig", "generate", "parse_lengths", "read_trace",
           "register_scheduler", "serve", "step_models"]

_MODELS: dict[tuple, Any] = {}


def step_models(cfg: ServeConfig, cache_dir: Any = None):
    """(target, draft or None) step models for ``cfg``, reused within a process."""
    from simulator.stepmodel import StepModel

    def get(model: str):
        key = (model, cfg.hardware if isinstance(cfg.hardware, str) else id(cfg.hardware), cfg.tp, cfg.dtype,
               cfg.fusion, cfg.launch, str(cache_dir))
        m = _MODELS.get(key)
        if m is None:
            if len(_MODELS) > 32:
                _MODELS.clear()
            m = _MODELS[key] = StepModel(model, cfg.hardware, tp=cfg.tp, dtype=cfg.dtype, fusion=cfg.fusion,
                                         launch=cfg.launch, cache_dir=cache_dir)
        return m

    return get(cfg.model), (get(cfg.spec.draft) if cfg.spec else None)


def serve(cfg: ServeConfig, arrival, prompt, output, *, step_model=None, draft_model=None,
          cache_dir: Any = None) -> ServeResult:
    """Simulate serving the requests (arrays of arrival seconds, prompt and output tokens)."""
    cfg.check()
    if step_model is None:
        step_model, draft_model = step_models(cfg, cache_dir)
    t0 = time.perf_counter()
    sim = Simulation(cfg, step_model, draft_model=draft_model)
    if cfg.spec is not None and draft_model is not None:
        from simulator.footprint import GIB

        dm = draft_model.memory(1, 1.0)
        # the draft's weights and its KV cache share the device with the target's
        mem = sim.memory
        from simulator.stepmodel import Memory

        sim.memory = Memory(mem.capacity, mem.usable, mem.weights + dm.weights, mem.activations,
                            mem.kv_per_token + dm.kv_per_token)
        if sim.memory.kv_capacity <= 0:
            raise ServeError(f"the draft model {cfg.spec.draft} leaves no room for the KV cache "
                             f"({sim.memory.kv_capacity / GIB:.1f} GiB)")
        sim = Simulation(cfg, step_model, draft_model=draft_model, memory=sim.memory)
    reqs = sim.run(arrival, prompt, output)
    conf = {k: v for k, v in asdict(cfg).items() if k not in ("sched", "spec", "hardware")}
    conf.update(asdict(cfg.sched))
    conf["hardware"] = cfg.hardware if isinstance(cfg.hardware, str) else getattr(cfg.hardware, "id", "?")
    conf["num_replicas"] = cfg.num_replicas
    if cfg.spec:
        conf.update(spec_draft=cfg.spec.draft, spec_k=cfg.spec.k, spec_alpha=cfg.spec.alpha)
    mem = sim.memory.describe()
    mem["kv_blocks_per_replica"] = sim.replicas[0].kv.total
    res = ServeResult.build(reqs, sim.log, conf, mem, sim.transfers)
    res.wall_s = time.perf_counter() - t0
    if hasattr(step_model, "save"):
        step_model.save()
    if draft_model is not None and hasattr(draft_model, "save"):
        draft_model.save()
    return res
