"""The model zoo and ``build``: a model id (or config.json path, or ``pkg.mod:fn``) and a
step description in, a ``WorkloadGraph`` out.

Models are built from their config (``zoo_configs.yaml``: values copied from Hugging Face
config.json files) with the real transformers implementation on the meta device. For
decoder LLMs whose layers are all alike, one layer is traced and replicated
(``workloads.replicate``), which gives the same ops as tracing every layer, in a fraction
of the time.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import WorkloadError
from .graph import WorkloadGraph
from .phases import DTYPES, FLOAT_DTYPES, check_options, check_step, dtype_spec, run_llm_step
from .replicate import ReplicationError, replicate_layer, replicate_sizes
from .tracer import trace, weight_bytes

ZOO_FILE = Path(__file__).with_name("zoo_configs.yaml")


@functools.lru_cache(maxsize=1)
def _zoo() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(ZOO_FILE.read_text())["models"]


def list_models() -> list[dict[str, Any]]:
    """One row per zoo id: id, family, kind, params, layers, source."""
    rows = []
    for mid, e in _zoo().items():
        row = {"id": mid, "family": e["family"], "kind": e["kind"], "params": None, "layers": None,
               "source": e["source"]}
        if e["kind"] == "llm":
            info = llm_config_info(_make_config(e["model_type"], e["config"]), _count_params_cached(mid))
            row.update(params=info["params"], layers=info["num_layers"])
        elif e["kind"] == "vision":
            cfg = e["config"]
            row["layers"] = cfg.get("num_hidden_layers") or sum(cfg.get("depths", []))
        rows.append(row)
    return rows


# -- configs and models ------------------------------------------------------------------

def _make_config(model_type: str, values: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.for_model(model_type, **values)
    except ValueError as e:
        raise WorkloadError(f"model_type {model_type!r} is not known to transformers: {e}") from None
    return cfg


def _is_causal_lm(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _uniform_layers(cfg: Any) -> bool:
    types = getattr(cfg, "layer_types", None)
    return not types or len(set(types)) == 1


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
    cfg = _make_config(e["model_type"], e["config"])
    if layers is not None:
        cfg = _with_layers(cfg, layers)
    return _instantiate(cfg, torch_dtype, e["kind"] == "llm")


@functools.lru_cache(maxsize=32)
def _count_params_cached(mid: str) -> int:
    e = _zoo()[mid]
    cfg = _make_config(e["model_type"], e["config"])
    return count_params(cfg)


def count_params(cfg: Any) -> int:
    """Distinct parameters of the full model (tied weights once), from a 1-layer build."""
    n = cfg.num_hidden_layers
    if _uniform_layers(cfg) and n > 1:
        model = _instantiate(_with_layers(cfg, 1), torch.float32, _is_causal_lm(cfg.model_type))
        prefix = _layer_prefix(model)
        if prefix:
            per = sum(p.numel() for k, p in model.named_parameters() if k.startswith(prefix + "."))
            total = sum(p.numel() for p in model.parameters())
            return total + (n - 1) * per
    model = _instantiate(cfg, torch.float32, _is_causal_lm(cfg.model_type))
    return sum(p.numel() for p in model.parameters())


def _layer_prefix(model: torch.nn.Module) -> str | None:
    """Module path of decoder layer 0 (``model.layers.0``, ``transformer.h.0``...)."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) >= 1:
            cls = type(mod[0]).__name__
            if cls.endswith(("DecoderLayer", "Block", "Layer")):
                return f"{name}.0"
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
               context: int, prompt: int, dtype: str, options: dict[str, str]) -> tuple[list, dict]:
    """Ops of one step and the full model's parameter sizes."""
    spec = DTYPES[dtype]
    n = cfg.num_hidden_layers
    if model_1 is not None:
        tracer = run_llm_step(model_1, 1, phase, batch, context, prompt, spec.policy, **options)
        prefix = _layer_prefix(model_1)
        io = tracer.module_io.get(prefix) if prefix else None
        if io and io[0] and io[1]:
            try:
                return (replicate_layer(tracer.ops, prefix, io, n),
                        replicate_sizes(tracer.param_sizes, prefix, n))
            except ReplicationError:
                pass
    tracer = run_llm_step(model_full_fn(), n, phase, batch, context, prompt, spec.policy, **options)
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


def build_llm(cfg: Any, *, phase: str, batch: int, context: int, prompt: int, dtype: str,
              meta: dict[str, Any], zoo_id: str | None = None, replicate: bool = True,
              options: dict[str, Any] | None = None) -> WorkloadGraph:
    spec = dtype_spec(dtype)
    opts = check_options(options or {})
    params = _count_params_cached(zoo_id) if zoo_id else count_params(cfg)
    info = llm_config_info(cfg, params)
    check_step(phase, batch, context, prompt, info.pop("max_positions"))
    uniform = replicate and _uniform_layers(cfg) and cfg.num_hidden_layers > 1
    if zoo_id:
        model_1 = _zoo_model(zoo_id, spec.torch_dtype, 1) if uniform else None
        full = functools.partial(_zoo_model, zoo_id, spec.torch_dtype, None)
    else:
        model_1 = _instantiate(_with_layers(cfg, 1), spec.torch_dtype, True) if uniform else None
        full = functools.partial(_instantiate, cfg, spec.torch_dtype, True)
    ops, sizes = _trace_llm(model_1, full, cfg, phase, batch, context, prompt, dtype, opts)
    meta = {**meta, "phase": phase, "config": info, **opts,
            "weight_bytes": weight_bytes(ops, sizes, spec.policy), "kv_cache_bytes": kv_cache_bytes(ops)}
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


_PARAMS_RE = re.compile(r"^([\w.\-]+)\[(.*)\]$")


def _parse_id(model: str) -> tuple[str, dict[str, str]]:
    """``countsketch[n=4096,d=64]`` -> ("countsketch", {"n": "4096", "d": "64"})."""
    m = _PARAMS_RE.match(model.strip())
    if not m:
        return model.strip(), {}
    params = {}
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        k, sep, v = part.partition("=")
        if not sep:
            raise WorkloadError(f"bad parameter {part!r} in {model!r}; write name=value")
        params[k.strip()] = v.strip()
    return m.group(1), params


def build(model: str, phase: str = "decode", batch: int = 1, context: int = 2048, prompt: int = 512,
          dtype: str = "bf16", **params: Any) -> WorkloadGraph:
    """Trace one step of ``model`` into a ``WorkloadGraph``.

    ``model`` is a zoo id (``list_models()``), a zoo id with parameters
    (``sparsestack[n=65536,d=256,k=4096,s=8]``), a path to a Hugging Face ``config.json``
    (its ``model_type`` picks the class), or ``"package.module:function"`` returning
    ``(module, example_inputs)``. LLMs trace ``phase`` (prefill of ``prompt`` tokens or
    decode of one token after ``context`` cached ones) for ``batch`` sequences; vision
    models trace one forward of ``batch`` images (phase ``forward``); sketches take
    ``n, d, k, s`` (see ``workloads.sketches``). LLM options: ``kv="static"`` (serving
    engines' in-place cache, default) or ``"dynamic"`` (HF DynamicCache's concatenation);
    ``logits="last"`` (default, as serving engines do) or ``"all"`` positions.
    """
    if not isinstance(model, str) or not model.strip():
        raise WorkloadError("model must be a zoo id, a config.json path or package.module:function")
    if dtype not in DTYPES:
        raise WorkloadError(f"dtype {dtype!r} unknown; choose one of: {', '.join(DTYPES)}")
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

            return build_sketch(name, e, dtype=dtype, meta=meta, **params)
        cfg = _make_config(e["model_type"], e["config"])
        if e["kind"] == "llm":
            return build_llm(cfg, phase=phase, batch=batch, context=context, prompt=prompt, dtype=dtype,
                             meta=meta, zoo_id=name, options=params)
        if params:
            raise WorkloadError(f"{name} takes no parameters, got {', '.join(params)}")
        dtype_spec(dtype, FLOAT_DTYPES)
        return build_vision(_zoo_model(name, DTYPES[dtype].torch_dtype, None), cfg, batch=batch,
                            dtype=dtype, meta=meta)
    if name.endswith(".json") or Path(name).is_file():
        return _build_from_config(Path(name), phase=phase, batch=batch, context=context, prompt=prompt,
                                  dtype=dtype, meta=meta, options=params)
    if ":" in name:
        return _build_from_callable(name, dtype=dtype, meta=meta)
    raise WorkloadError(f"unknown model {model!r}; known: {', '.join(zoo)} "
                        "(or a config.json path, or package.module:function)")


def _build_from_config(path: Path, *, phase: str, batch: int, context: int, prompt: int, dtype: str,
                       meta: dict, options: dict[str, Any]) -> WorkloadGraph:
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise WorkloadError(f"config file {str(path)!r} not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise WorkloadError(f"cannot read {str(path)!r} as JSON: {e}") from None
    if not isinstance(values, dict) or "model_type" not in values:
        raise WorkloadError(f"{str(path)!r} has no model_type; is it a Hugging Face config.json?")
    values = dict(values)
    model_type = values.pop("model_type")
    for k in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
              "quantization_config", "auto_map"):
        values.pop(k, None)
    try:
        cfg = _make_config(model_type, values)
    except (TypeError, ValueError) as e:
        raise WorkloadError(f"{str(path)!r}: bad config: {_first_line(e)}") from None
    meta["source"] = str(path)
    with _user_model_errors(str(path)):
        if _is_causal_lm(model_type):
            return build_llm(cfg, phase=phase, batch=batch, context=context, prompt=prompt, dtype=dtype,
                             meta=meta, options=options)
        if hasattr(cfg, "num_channels"):
            spec = dtype_spec(dtype, FLOAT_DTYPES)
            return build_vision(_instantiate(cfg, spec.torch_dtype, False), cfg, batch=batch, dtype=dtype,
                                meta=meta)
    raise WorkloadError(f"model_type {model_type!r}: only causal LMs and image models are supported")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


class _user_model_errors:
    """A user's model that cannot run on meta tensors (data-dependent Python control flow,
    ``.item()``) is a property of their input: report it in one line."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __enter__(self) -> None:
        return None

    def __exit__(self, tp, exc, tb) -> bool:
        if exc is None or getattr(exc, "user_facing", False):
            return False
        if isinstance(exc, (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError)):
            raise WorkloadError(f"could not trace {self.ref}: {_first_line(exc)}") from exc
        return False


def _build_from_callable(ref: str, *, dtype: str, meta: dict) -> WorkloadGraph:
    mod_name, _, fn_name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise WorkloadError(f"cannot load {ref!r}: {e}") from None
    with _user_model_errors(ref):
        result = fn()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise WorkloadError(f"{ref} must return (module, example_inputs)")
    module, inputs = result
    meta = {**meta, "phase": "forward", "source": ref}
    with _user_model_errors(ref):
        return trace(module.eval(), inputs, meta=meta)
