"""The first N decoder layers of an LLM, traced for the per-layer step models
(``simulator.stepmodel``): a step of the whole model is priced from one- and two-layer
graphs, so only those are ever traced."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from .builder import _parse_id, _zoo
from .configfile import config_from_file, make_config
from .errors import WorkloadError, user_model_errors
from .graph import WorkloadGraph
from .phases import DTYPES, check_step, run_llm_step
from .precision import Precision, parse
from .quantize import quantize, weight_bytes
from .tracer import DtypePolicy
from .zoo import (
    _count_params_cached,
    _first_alike,
    _instantiate,
    _layer_prefix,
    _with_layers,
    count_params,
    llm_config_info,
)


def llm_config(model: str) -> tuple[Any, dict[str, Any], str | None]:
    """(transformers config, ``llm_config_info`` of the whole model, zoo id or None) of a
    decoder LLM given as a zoo id or a config.json path; anything else is refused."""
    if not isinstance(model, str) or not model.strip():
        raise WorkloadError("model must be a zoo id or a config.json path")
    name, params = _parse_id(model)
    zoo = _zoo()
    if name in zoo:
        e = zoo[name]
        if e["kind"] != "llm":
            raise WorkloadError(f"{name} is not a decoder LLM (kind {e['kind']}); serving needs one")
        if params:
            raise WorkloadError(f"{name} takes no parameters, got {', '.join(params)}")
        cfg = make_config(e["model_type"], e["config"])
        return cfg, llm_config_info(cfg, _count_params_cached(name)), name
    if name.endswith(".json") or Path(name).is_file():
        cfg, causal = config_from_file(Path(name))
        if not causal:
            raise WorkloadError(f"{name}: model_type {cfg.model_type!r} is not a causal LM; serving needs one")
        with user_model_errors(name):
            return cfg, llm_config_info(cfg, count_params(cfg)), None
    raise WorkloadError(f"unknown model {model!r}: serving takes a zoo LLM id ({', '.join(k for k, e in zoo.items() if e['kind'] == 'llm')}) "
                        "or a config.json path")


def uniform_layers(cfg: Any) -> bool:
    """Whether every decoder layer of ``cfg`` is alike (so one layer's time repeats)."""
    return _first_alike(cfg) == 0


@functools.lru_cache(maxsize=16)
def _truncated_model(model: str, layers: int, torch_dtype: torch.dtype) -> torch.nn.Module:
    cfg = llm_config(model)[0]
    return _instantiate(_with_layers(cfg, layers), torch_dtype, True)


def build_layers(model: str, layers: int, *, phase: str, batch: int = 1, context: int = 0, prompt: int = 1,
                 dtype: str = "bf16", fusion: str = "none") -> WorkloadGraph:
    """One step of the first ``layers`` decoder layers of an LLM (with its embedding, final
    norm and head), traced layer by layer (no replication), then fused by ``fusion``.

    A step model times the whole model as ``t(1) + (L - 1) * (t(2) - t(1))`` from one- and
    two-layer graphs when the layers are alike: the same ops in the same order as the full
    graph, at a fraction of the tracing cost. ``meta["config"]`` describes the whole model.
    """
    from .fusion import fuse, policy
    from .quantkernels import choose

    policy(fusion)
    prec = parse(dtype, "dtype")
    fam = choose(prec)
    cfg, info, _ = llm_config(model)
    spec = DTYPES[prec.float_dtype]
    n = int(layers)
    if not 1 <= n <= cfg.num_hidden_layers:
        raise WorkloadError(f"layers must be in 1..{cfg.num_hidden_layers}, got {layers}")
    check_step(phase, batch, context, prompt, info.get("max_positions"))
    import warnings

    with user_model_errors(model), warnings.catch_warnings():
        # transformers' deprecation notices, once per traced step, would drown a serving run
        warnings.simplefilter("ignore", FutureWarning)
        mod = _truncated_model(model, n, spec.torch_dtype)
        tracer = run_llm_step(mod, n, phase, batch, context, prompt, DtypePolicy())
    info = {k: v for k, v in info.items() if k != "max_positions"}
    meta = {"model": model, "phase": phase, "batch": batch, "context": context, "prompt": prompt,
            "dtype": str(prec) if not prec.uniform or fam is not None else prec.float_dtype,
            "config": info, "layers_traced": n, "kv": "static", "logits": "last",
            "weight_bytes": _whole_model_weight_bytes(tracer, _layer_prefix(mod), n, cfg.num_hidden_layers, prec, fam)}
    g = WorkloadGraph(meta=meta)
    g.extend(tracer.ops)
    g = fuse(g, fusion)
    return quantize(g, prec, fam) if not prec.uniform or fam is not None else g


def _whole_model_weight_bytes(tracer: Any, prefix: str | None, traced: int, layers: int, prec: Precision,
                              fam: Any) -> int:
    """Weight bytes of all ``layers`` from a trace of the first ``traced`` (alike) ones: what
    is outside the decoder layers once, what is inside scaled by layers / traced."""
    total = weight_bytes(tracer.ops, tracer.param_sizes, prec, fam)
    if prefix is None or traced == layers:
        return total
    stack = "w:" + prefix.rpartition(".")[0] + "."  # parameter names as the tracer keeps them
    inside = {k: v for k, v in tracer.param_sizes.items() if k.startswith(stack)}
    per = weight_bytes(tracer.ops, inside, prec, fam)
    return int(total - per + per * layers / traced)
