"""A Hugging Face config.json given as a model: read, every architecture number checked,
and made a transformers config (``make_config``, which the zoo's own entries go through
too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import WorkloadError, first_line


def make_config(model_type: str, values: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.for_model(model_type, **values)
    except ValueError as e:
        raise WorkloadError(f"model_type {model_type!r} is not known to transformers: {e}") from None
    return cfg


def is_causal_lm(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


#: keys a causal-LM config.json must state itself (under this name or its class's alias,
#: e.g. gpt2's ``n_embd``): transformers would otherwise fill in its own defaults and trace
#: a model nobody asked for (``{"model_type": "llama"}`` alone is a 6.7B LLaMA)
REQUIRED_LLM_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
#: (smallest, largest) value of each architecture number a config may hold: below is
#: nonsense (0 layers, vocab 0), above is no model anyone has built (hidden size 1e30)
CONFIG_LIMITS = {
    "hidden_size": (1, 2**20),
    "num_hidden_layers": (1, 10_000),
    "vocab_size": (1, 2**28),
    "intermediate_size": (1, 2**24),
    "max_position_embeddings": (1, 2**31),
    "num_channels": (1, 2**12),
    # head, expert and image-patch counts and sizes share one bound
    **dict.fromkeys(("num_attention_heads", "num_key_value_heads", "head_dim", "num_local_experts", "num_experts",
                     "num_experts_per_tok", "image_size", "patch_size"), (1, 2**16)),
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


def config_values(path: Path) -> tuple[str, dict[str, Any]]:
    """(model_type, architecture values) of a config.json, without the keys that describe
    the checkpoint rather than the model."""
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
        raise WorkloadError(f"cannot read {str(path)!r} as JSON: {first_line(e)}") from None
    if not isinstance(values, dict) or "model_type" not in values:
        raise WorkloadError(f"{str(path)!r} has no model_type; is it a Hugging Face config.json?")
    if not isinstance(values["model_type"], str):
        raise WorkloadError(f"{str(path)!r}: model_type must be a string, got {values['model_type']!r}")
    values = dict(values)
    model_type = values.pop("model_type")
    for k in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
              "quantization_config", "auto_map"):
        values.pop(k, None)
    return model_type, values


def config_from_file(path: Path) -> tuple[Any, bool]:
    """(transformers config, is a causal LM) of a config.json, every value checked."""
    model_type, values = config_values(path)
    from transformers import CONFIG_MAPPING

    where = repr(str(path))
    if model_type not in CONFIG_MAPPING:
        raise WorkloadError(f"{where}: model_type {model_type!r} is not known to transformers")
    aliases = dict(getattr(CONFIG_MAPPING[model_type], "attribute_map", {}) or {})
    causal = is_causal_lm(model_type)
    check_config(values, aliases, where, causal, given=True)
    try:
        cfg = make_config(model_type, values)
    except WorkloadError:
        raise
    except Exception as e:  # transformers validating the file's values: any complaint is about the input
        detail = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise WorkloadError(f"{where}: bad config: {type(e).__name__}: {detail[:300]}") from None
    check_config(cfg, aliases, where, causal, given=False)
    return cfg, causal
