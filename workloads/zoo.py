"""The model zoo and the tracer's side of ``build`` (``workloads.builder``): a model id (or
config.json path, or ``pkg.mod:fn``) and a step description in, a traced ``WorkloadGraph`` out.

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
import math
from pathlib import Path
from typing import Any

import torch

from .builder import ZOO_FILE, _parse_id, _refuse_options, _zoo  # noqa: F401  (torch-free; re-exported)
from .errors import WorkloadError
from .graph import WorkloadGraph
from .phases import DTYPES, FLOAT_DTYPES, check_options, check_step, dtype_spec, run_llm_step
from .precision import FORMAT_BYTES, Precision, parse
from .quantize import quantize, weight_bytes
from .replicate import ReplicationError, replicate_layer, replicate_sizes
from .tracer import DtypePolicy, trace


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
    return _first_alike(cfg) == 0


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
    k = _first_alike(cfg)
    if k is not None and n > k + 1:
        model = _instantiate(_with_layers(cfg, k + 1), torch.float32, _is_causal_lm(cfg.model_type))
        prefix = _layer_prefix(model, k)
        if prefix:
            per = sum(p.numel() for key, p in model.named_parameters() if key.startswith(prefix + "."))
            total = sum(p.numel() for p in model.parameters())
            return total + (n - k - 1) * per
    model = _instantiate(cfg, torch.float32, _is_causal_lm(cfg.model_type))
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
        cfg = _make_config(e["model_type"], e["config"])
    else:
        values = _read_config(Path(name))
        model_type = values.pop("model_type")
        for k in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
                  "quantization_config", "auto_map"):
            values.pop(k, None)
        cfg = _make_config(model_type, values)
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
        cfg = _make_config(e["model_type"], e["config"])
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


#: keys a causal-LM config.json must state itself (under this name or its class's alias,
#: e.g. gpt2's ``n_embd``): transformers would otherwise fill in its own defaults and trace
#: a model nobody asked for (``{"model_type": "llama"}`` alone is a 6.7B LLaMA)
REQUIRED_LLM_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
#: (smallest, largest) value of each architecture number a config may hold: below is
#: nonsense (0 layers, vocab 0), above is no model anyone has built (hidden size 1e30)
CONFIG_LIMITS = {
    "hidden_size": (1, 2**20),
    "num_hidden_layers": (1, 10_000),
    "num_attention_heads": (1, 2**16),
    "num_key_value_heads": (1, 2**16),
    "head_dim": (1, 2**16),
    "vocab_size": (1, 2**28),
    "intermediate_size": (1, 2**24),
    "max_position_embeddings": (1, 2**31),
    "num_local_experts": (1, 2**16),
    "num_experts": (1, 2**16),
    "num_experts_per_tok": (1, 2**16),
    "image_size": (1, 2**16),
    "patch_size": (1, 2**16),
    "num_channels": (1, 2**12),
}


def _lookup(source: Any, key: str, aliases: dict[str, str]) -> tuple[str, Any]:
    """(name as written, value) of an architecture key in a raw dict or a config object."""
    if isinstance(source, dict):
        for name in (key, aliases.get(key)):
            if name is not None and name in source:
                return name, source[name]
        return key, None
    return aliases.get(key, key), getattr(source, key, None)


def check_config(source: Any, aliases: dict[str, str], where: str, causal: bool, given: bool) -> None:
    """Refuse a config whose architecture numbers are missing or out of range, naming the key.

    ``source`` is the file's own values (``given=True``: each of ``REQUIRED_LLM_KEYS`` must
    be among them for a causal LM, by its name or the config class's alias) or the built
    config object (the defaults transformers filled in are checked too).
    """
    if causal and given:
        for key in REQUIRED_LLM_KEYS:
            if _lookup(source, key, aliases)[1] is None:
                name = key if key not in aliases else f"{key} (or {aliases[key]})"
                raise WorkloadError(f"{where}: missing {name}; a config.json must state the model's "
                                    f"{', '.join(REQUIRED_LLM_KEYS)}")
    for key, (lo, hi) in CONFIG_LIMITS.items():
        name, v = _lookup(source, key, aliases)
        if v is None:
            continue
        vals = list(v) if isinstance(v, (list, tuple)) and key in ("image_size", "patch_size") else [v]
        for x in vals:
            if isinstance(x, bool) or not isinstance(x, int):
                raise WorkloadError(f"{where}: {name} must be a whole number in {lo}..{hi}, got {x!r}")
            if not lo <= x <= hi:
                raise WorkloadError(f"{where}: {name} = {x} is out of range; allowed {lo}..{hi}")
    if not causal:
        return
    hidden = _lookup(source, "hidden_size", aliases)[1]
    heads = _lookup(source, "num_attention_heads", aliases)[1]
    head_dim = _lookup(source, "head_dim", aliases)[1]
    if hidden and heads and head_dim is None and hidden % heads:
        raise WorkloadError(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    kv = _lookup(source, "num_key_value_heads", aliases)[1]
    if heads and kv and heads % kv:
        raise WorkloadError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkloadError(f"config file {str(path)!r} not found") from None
    except OSError as e:
        raise WorkloadError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    try:
        values = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise WorkloadError(f"{str(path)!r}: not UTF-8 text (byte {e.start}); a config.json is UTF-8 JSON") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise WorkloadError(f"cannot read {str(path)!r} as JSON: {_first_line(e)}") from None
    if not isinstance(values, dict) or "model_type" not in values:
        raise WorkloadError(f"{str(path)!r} has no model_type; is it a Hugging Face config.json?")
    if not isinstance(values["model_type"], str):
        raise WorkloadError(f"{str(path)!r}: model_type must be a string, got {values['model_type']!r}")
    return dict(values)


def _config_from_file(path: Path) -> tuple[Any, bool]:
    """(transformers config, is a causal LM) of a config.json, every value checked."""
    values = _read_config(path)
    model_type = values.pop("model_type")
    for k in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
              "quantization_config", "auto_map"):
        values.pop(k, None)
    from transformers import CONFIG_MAPPING

    where = repr(str(path))
    if model_type not in CONFIG_MAPPING:
        raise WorkloadError(f"{where}: model_type {model_type!r} is not known to transformers")
    aliases = dict(getattr(CONFIG_MAPPING[model_type], "attribute_map", {}) or {})
    causal = _is_causal_lm(model_type)
    check_config(values, aliases, where, causal, given=True)
    try:
        cfg = _make_config(model_type, values)
    except WorkloadError:
        raise
    except Exception as e:  # transformers validating the file's values: any complaint is about the input
        detail = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise WorkloadError(f"{where}: bad config: {type(e).__name__}: {detail[:300]}") from None
    check_config(cfg, aliases, where, causal, given=False)
    return cfg, causal


def _build_from_config(path: Path, *, phase: str, batch: int, context: int, prompt: int, dtype: str,
                       meta: dict, options: dict[str, Any], given: frozenset[str] = frozenset()) -> WorkloadGraph:
    cfg, causal = _config_from_file(path)
    meta["source"] = str(path)
    with _user_model_errors(str(path)):
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


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


class _user_model_errors:
    """An exception raised while building or tracing the user's model (their function, or
    transformers code on their config: data-dependent control flow, ``.item()`` on meta
    tensors, a ``KeyError``, even ``SystemExit``) is a property of their input: one line
    naming the model and the exception. Ctrl-C still interrupts."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __enter__(self) -> None:
        return None

    def __exit__(self, tp, exc, tb) -> bool:
        if exc is None or getattr(exc, "user_facing", False) or isinstance(exc, KeyboardInterrupt):
            return False
        if isinstance(exc, (Exception, SystemExit)):
            raise WorkloadError(f"could not trace {self.ref}: {_first_line(exc)}") from None
        return False


def _build_from_callable(ref: str, *, dtype: str, meta: dict) -> WorkloadGraph:
    mod_name, _, fn_name = ref.partition(":")
    if not mod_name or not fn_name:
        raise WorkloadError(f"{ref!r}: write package.module:function")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise WorkloadError(f"cannot load {ref!r}: {e}") from None
    except (Exception, SystemExit) as e:  # the user's module failed while importing
        raise WorkloadError(f"cannot load {ref!r}: importing {mod_name} raised {_first_line(e)}") from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise WorkloadError(f"cannot load {ref!r}: module {mod_name} has no {fn_name!r}")
    if not callable(fn):
        raise WorkloadError(f"{ref}: {fn_name} is not a function")
    with _user_model_errors(f"{ref}()"):
        result = fn()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise WorkloadError(f"{ref} must return (module, example_inputs)")
    module, inputs = result
    meta = {**meta, "phase": "forward", "source": ref}
    with _user_model_errors(ref):
        return trace(module.eval(), inputs, meta=meta)


# -- truncated builds for per-layer step models ----------------------------------------------

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
        cfg = _make_config(e["model_type"], e["config"])
        return cfg, llm_config_info(cfg, _count_params_cached(name)), name
    if name.endswith(".json") or Path(name).is_file():
        cfg, causal = _config_from_file(Path(name))
        if not causal:
            raise WorkloadError(f"{name}: model_type {cfg.model_type!r} is not a causal LM; serving needs one")
        with _user_model_errors(name):
            return cfg, llm_config_info(cfg, count_params(cfg)), None
    raise WorkloadError(f"unknown model {model!r}: serving takes a zoo LLM id ({', '.join(k for k, e in zoo.items() if e['kind'] == 'llm')}) "
                        "or a config.json path")


def uniform_layers(cfg: Any) -> bool:
    """Whether every decoder layer of ``cfg`` is alike (so one layer's time repeats)."""
    return _uniform_layers(cfg)


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

    with _user_model_errors(model), warnings.catch_warnings():
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
