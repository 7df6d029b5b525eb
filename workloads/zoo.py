"""The model zoo and the tracer's side of ``build`` (``workloads.builder``): a model id (or
config.json path, or ``pkg.mod:fn``) and a step description in, a traced ``WorkloadGraph`` out.

Models are built from their config (``zoo_configs.yaml``: values copied from Hugging Face
config.json files) with the real transformers implementation on the meta device. For
decoder LLMs whose layers are all alike, one layer is traced and replicated
(``workloads.replicate``), which gives the same ops as tracing every layer, in a fraction
of the time. A config.json is read and checked by ``workloads.configfile``; the first few
layers alone, for step models, are built by ``workloads.truncated``.
"""

from __future__ import annotations

import functools
import importlib
import math
from pathlib import Path
from typing import Any

import torch

from .builder import ZOO_FILE, _parse_id, _refuse_options, _zoo  # noqa: F401  (torch-free; re-exported)
from .configfile import config_from_file, config_values, is_causal_lm, make_config
from .errors import WorkloadError, first_line, user_model_errors
from .graph import WorkloadGraph
from .phases import DTYPES, FLOAT_DTYPES, check_options, check_step, dtype_spec, run_llm_step
from .precision import FORMAT_BYTES, Precision, parse
from .quantize import weight_bytes
from .replicate import ReplicationError, replicate_layer, replicate_sizes
from .tracer import DtypePolicy, trace


def list_models() -> list[dict[str, Any]]:
    """One row per zoo id: id, family, kind, params, layers, source."""
    rows = []
    for mid, e in _zoo().items():
        row = {"id": mid, "family": e["family"], "kind": e["kind"], "params": None, "layers": None,
               "source": e["source"]}
        if e["kind"] == "llm":
            info = llm_config_info(make_config(e["model_type"], e["config"]), _count_params_cached(mid))
            row.update(params=info["params"], layers=info["num_layers"])
        elif e["kind"] == "vision":
            cfg = e["config"]
            row["layers"] = cfg.get("num_hidden_layers") or sum(cfg.get("depths", []))
        rows.append(row)
    return rows


# -- configs and models ------------------------------------------------------------------

def _first_alike(cfg: Any) -> int | None:
    """The layer from which all later decoder layers are alike (0: all are), or None.
    DeepSeek-V3 runs ``first_k_dense_replace`` dense layers before its MoE ones; dense-only
    layers between MoE ones (Qwen3-MoE's ``mlp_only_layers``, a sparse step > 1) break the run."""
    types = getattr(cfg, "layer_types", None)
    if types and len(set(types)) > 1:
        return None
    if getattr(cfg, "mlp_only_layers", None) or (getattr(cfg, "decoder_sparse_step", 1) or 1) > 1:
        return None
    k = int(getattr(cfg, "first_k_dense_replace", 0) or 0)
    return k if k < cfg.num_hidden_layers else None


def _with_layers(cfg: Any, n: int) -> Any:
    cfg = cfg.__class__.from_dict(cfg.to_dict())
    types = getattr(cfg, "layer_types", None)
    cfg.num_hidden_layers = n
    if types:
        cfg.layer_types = list(types)[:n]
    return cfg


def _instantiate(cfg: Any, torch_dtype: torch.dtype, causal: bool) -> torch.nn.Module:
    from transformers import AutoModel, AutoModelForCausalLM

    auto = AutoModelForCausalLM if causal else AutoModel
    with torch.device("meta"):
        try:  # SDPA keeps attention one fused op; models without it use their own attention
            model = auto.from_config(cfg, dtype=torch_dtype, attn_implementation="sdpa")
        except ValueError:
            model = auto.from_config(cfg, dtype=torch_dtype, attn_implementation="eager")
    return model.eval()


@functools.lru_cache(maxsize=8)
def _zoo_model(mid: str, torch_dtype: torch.dtype, layers: int | None) -> torch.nn.Module:
    e = _zoo()[mid]
    cfg = make_config(e["model_type"], e["config"])
    if layers is not None:
        cfg = _with_layers(cfg, layers)
    return _instantiate(cfg, torch_dtype, e["kind"] == "llm")


@functools.lru_cache(maxsize=32)
def _count_params_cached(mid: str) -> int:
    e = _zoo()[mid]
    cfg = make_config(e["model_type"], e["config"])
    return count_params(cfg)


def count_params(cfg: Any) -> int:
    """Distinct parameters of the full model (tied weights once), from a 1-layer build."""
    n = cfg.num_hidden_layers
    k = _first_alike(cfg)
    if k is not None and n > k + 1:
        model = _instantiate(_with_layers(cfg, k + 1), torch.float32, is_causal_lm(cfg.model_type))
        prefix = _layer_prefix(model, k)
        if prefix:
            per = sum(p.numel() for key, p in model.named_parameters() if key.startswith(prefix + "."))
            total = sum(p.numel() for p in model.parameters())
            return total + (n - k - 1) * per
    model = _instantiate(cfg, torch.float32, is_causal_lm(cfg.model_type))
    return sum(p.numel() for p in model.parameters())


def _layer_prefix(model: torch.nn.Module, index: int = 0) -> str | None:
    """Module path of decoder layer ``index`` (``model.layers.0``, ``transformer.h.0``...)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > index:
            cls = type(mod[0]).__name__
            if cls.endswith(("DecoderLayer", "Block", "Layer")):
                return f"{name}.{index}"
    return None


def llm_config_info(cfg: Any, params: int) -> dict[str, Any]:
    hidden = cfg.hidden_size
    heads = cfg.num_attention_heads
    inter = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * hidden
    return {
        "num_layers": cfg.num_hidden_layers,
        "hidden": hidden,
        "heads": heads,
        "kv_heads": getattr(cfg, "num_key_value_heads", None) or heads,
        "head_dim": getattr(cfg, "head_dim", None) or hidden // heads,
        "intermediate": inter,
        "vocab": cfg.vocab_size,
        "params": int(params),
        "num_experts": int(getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", None) or 0),
        "top_k": int(getattr(cfg, "num_experts_per_tok", None) or 0),
        "max_positions": getattr(cfg, "max_position_embeddings", None),
    }


# -- building graphs ---------------------------------------------------------------------

def _trace_llm(model_1: torch.nn.Module | None, model_full_fn: Any, cfg: Any, phase: str, batch: int,
               context: int, prompt: int, options: dict[str, str]) -> tuple[list, dict]:
    """Ops of one step (traced in the float dtype of the models given) and the full model's
    parameter sizes."""
    policy = DtypePolicy()  # lower precisions are a pass over the traced step (workloads.quantize)
    n = cfg.num_hidden_layers
    if model_1 is not None:
        k = _first_alike(cfg) or 0
        tracer = run_llm_step(model_1, k + 1, phase, batch, context, prompt, policy, **options)
        prefix = _layer_prefix(model_1, k)
        io = tracer.module_io.get(prefix) if prefix else None
        if io and io[0] and io[1]:
            try:
                return (replicate_layer(tracer.ops, prefix, io, n),
                        replicate_sizes(tracer.param_sizes, prefix, n))
            except ReplicationError:
                pass
    tracer = run_llm_step(model_full_fn(), n, phase, batch, context, prompt, policy, **options)
    return tracer.ops, tracer.param_sizes


def kv_cache_bytes(ops: list) -> int:
    """Bytes the KV cache holds after the step (past + new positions, every layer)."""
    total = 0
    for op in ops:
        a = op.attrs
        if op.name == "kv_cache_write":
            total += sum(w.bytes for w in op.writes) * (a["past"] + a["positions"]) // a["positions"]
        elif a.get("kv") == "dynamic":
            total += sum(w.bytes for w in op.writes)
    return total


def build_llm(cfg: Any, *, phase: str, batch: int, context: int, prompt: int, dtype: str | Precision,
              meta: dict[str, Any], zoo_id: str | None = None, replicate: bool = True,
              options: dict[str, Any] | None = None) -> WorkloadGraph:
    """One step of a causal LM traced in the precision's float dtype. ``meta["weight_bytes"]``
    counts the weights as the precision's kernel stores them; the precision's own pass
    (``workloads.quantize``) is applied by ``build`` after fusion."""
    from .quantkernels import choose

    prec = parse(dtype, "dtype")
    spec = DTYPES[prec.float_dtype]
    fam = choose(prec)
    opts = check_options(options or {})
    params = _count_params_cached(zoo_id) if zoo_id else count_params(cfg)
    info = llm_config_info(cfg, params)
    check_step(phase, batch, context, prompt, info.pop("max_positions"))
    first = _first_alike(cfg)
    uniform = replicate and first is not None and cfg.num_hidden_layers > first + 1
    if zoo_id:
        model_1 = _zoo_model(zoo_id, spec.torch_dtype, first + 1) if uniform else None
        full = functools.partial(_zoo_model, zoo_id, spec.torch_dtype, None)
    else:
        model_1 = _instantiate(_with_layers(cfg, first + 1), spec.torch_dtype, True) if uniform else None
        full = functools.partial(_instantiate, cfg, spec.torch_dtype, True)
    ops, sizes = _trace_llm(model_1, full, cfg, phase, batch, context, prompt, opts)
    from . import mla

    if mla.applies(cfg, phase):
        ops = mla.absorb(ops, cfg)
    # the cache as the precision stores it (the trace holds it in the float dtype)
    kv_ratio = FORMAT_BYTES[prec.kv_cache] / FORMAT_BYTES[prec.float_dtype]
    meta = {**meta, "phase": phase, "config": info, **opts, "weight_bytes": weight_bytes(ops, sizes, prec, fam),
            "kv_cache_bytes": int(math.ceil(kv_cache_bytes(ops) * kv_ratio))}
    g = WorkloadGraph(meta=meta)
    g.extend(ops)
    return g


def build_vision(model: torch.nn.Module, cfg: Any, *, batch: int, dtype: str, meta: dict) -> WorkloadGraph:
    spec = dtype_spec(dtype, FLOAT_DTYPES)
    if not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"batch must be a positive integer, got {batch!r}")
    size = getattr(cfg, "image_size", 224)
    pixels = torch.empty(batch, cfg.num_channels, size, size, dtype=spec.torch_dtype, device="meta")
    return trace(model, (pixels,), meta={**meta, "phase": "forward", "image_size": size})


def llm_max_positions(model: str) -> int | None:
    """The longest sequence a zoo or config.json LLM allows (its ``max_position_embeddings``)."""
    name, _ = _parse_id(model)
    zoo = _zoo()
    if name in zoo:
        e = zoo[name]
        cfg = make_config(e["model_type"], e["config"])
    else:
        cfg = make_config(*config_values(Path(name)))
    return getattr(cfg, "max_position_embeddings", None)


def _build(model: str, phase: str, batch: int, context: int, prompt: int, prec: Precision, given: frozenset[str],
           params: dict[str, Any]) -> WorkloadGraph:
    if not isinstance(model, str) or not model.strip():
        raise WorkloadError("model must be a zoo id, a config.json path or package.module:function")
    # models other than causal LMs run in one float dtype: anything else is refused by name
    dtype = prec.weights if prec.uniform and prec.kernel is None and prec.group_size is None else str(prec)
    name, id_params = _parse_id(model)
    params = {**id_params, **params}
    meta = {"model": model, "phase": phase, "batch": batch, "context": context, "prompt": prompt,
            "dtype": dtype}
    zoo = _zoo()
    if name in zoo:
        e = zoo[name]
        meta["source"] = e["source"]
        if e["kind"] == "sketch":
            from .sketches import build_sketch

            _refuse_options(name, "a sparse sketch sized by its [n=...,d=...,k=...,s=...] parameters", given,
                            ("dtype",))
            return build_sketch(name, e, dtype=dtype, meta=meta, **params)
        cfg = make_config(e["model_type"], e["config"])
        if e["kind"] == "llm":
            return build_llm(cfg, phase=phase, batch=batch, context=context, prompt=prompt, dtype=prec,
                             meta=meta, zoo_id=name, options=params)
        if params:
            raise WorkloadError(f"{name} takes no parameters, got {', '.join(params)}")
        _refuse_options(name, "a vision model with one forward pass (no phase, context or prompt)", given,
                        ("batch", "dtype"))
        dtype_spec(dtype, FLOAT_DTYPES)
        return build_vision(_zoo_model(name, DTYPES[dtype].torch_dtype, None), cfg, batch=batch,
                            dtype=dtype, meta=meta)
    if name.endswith(".json") or Path(name).is_file():
        return _build_from_config(Path(name), phase=phase, batch=batch, context=context, prompt=prompt,
                                  dtype=dtype, meta=meta, options=params, given=given)
    if ":" in name:
        _refuse_options(name, "a pkg.mod:fn model whose example inputs fix the step", given, ())
        dtype_spec(dtype, FLOAT_DTYPES)
        return _build_from_callable(name, dtype=dtype, meta=meta)
    raise WorkloadError(f"unknown model {model!r}; known: {', '.join(zoo)} "
                        "(or a config.json path, or package.module:function)")


def _build_from_config(path: Path, *, phase: str, batch: int, context: int, prompt: int, dtype: str,
                       meta: dict, options: dict[str, Any], given: frozenset[str] = frozenset()) -> WorkloadGraph:
    cfg, causal = config_from_file(path)
    meta["source"] = str(path)
    with user_model_errors(str(path)):
        if causal:
            return build_llm(cfg, phase=phase, batch=batch, context=context, prompt=prompt, dtype=dtype,
                             meta=meta, options=options)
        if hasattr(cfg, "num_channels"):
            _refuse_options(str(path), "a vision model with one forward pass (no phase, context or prompt)", given,
                            ("batch", "dtype"))
            spec = dtype_spec(dtype, FLOAT_DTYPES)
            return build_vision(_instantiate(cfg, spec.torch_dtype, False), cfg, batch=batch, dtype=dtype,
                                meta=meta)
    raise WorkloadError(f"model_type {cfg.model_type!r}: only causal LMs and image models are supported")


def _build_from_callable(ref: str, *, dtype: str, meta: dict) -> WorkloadGraph:
    mod_name, _, fn_name = ref.partition(":")
    if not mod_name or not fn_name:
        raise WorkloadError(f"{ref!r}: write package.module:function")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise WorkloadError(f"cannot load {ref!r}: {e}") from None
    except (Exception, SystemExit) as e:  # the user's module failed while importing
        raise WorkloadError(f"cannot load {ref!r}: importing {mod_name} raised {first_line(e)}") from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise WorkloadError(f"cannot load {ref!r}: module {mod_name} has no {fn_name!r}")
    if not callable(fn):
        raise WorkloadError(f"{ref}: {fn_name} is not a function")
    with user_model_errors(f"{ref}()"):
        result = fn()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise WorkloadError(f"{ref} must return (module, example_inputs)")
    module, inputs = result
    meta = {**meta, "phase": "forward", "source": ref}
    with user_model_errors(ref):
        return trace(module.eval(), inputs, meta=meta)
