"""Whole-model steps of small zoo models with random weights (needs ``transformers``).

Imported lazily by the ``model`` case family only, so the rest of the harness runs on a
box without transformers; there the model cases are recorded as skipped with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from .cases import DTYPES, Case

#: architecture facts of the zoo models (public config.json files on the Hugging Face hub)
CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": {
        "family": "gpt2",
        # huggingface.co/openai-community/gpt2/blob/main/config.json
        "kwargs": {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024, "vocab_size": 50257},
    },
    "qwen2.5-0.5b": {
        "family": "qwen2",
        # huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
        "kwargs": {
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "max_position_embeddings": 32768,
            "tie_word_embeddings": True,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
        },
    },
}


#: the same architecture shrunk until its kernels cost next to nothing: what is left of a
#: step is the framework's own time (module calls, cache and mask bookkeeping, dispatch)
TINY = {
    "gpt2": {"n_embd": 8, "n_head": 2, "vocab_size": 64, "bos_token_id": 0, "eos_token_id": 0},
    "qwen2.5-0.5b": {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "head_dim": 4, "vocab_size": 64},
}


def config(model: str, tiny: bool = False):
    import transformers

    if model not in CONFIGS:
        raise ValueError(f"unknown harness model {model!r}; known: {', '.join(CONFIGS)}")
    spec = CONFIGS[model]
    kwargs = {**spec["kwargs"], **(TINY[model] if tiny else {})}
    if spec["family"] == "gpt2":
        return transformers.GPT2Config(**kwargs)
    return transformers.Qwen2Config(**kwargs)


def build_model(model: str, dtype: str, device: str, tiny: bool = False) -> torch.nn.Module:
    import transformers

    cfg = config(model, tiny)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)  # random weights, reproducible
    m = transformers.AutoModelForCausalLM.from_config(cfg, dtype=DTYPES[dtype])
    return m.to(device).eval()


def build_step(c: Case, device: str, gen: torch.Generator):
    """One decode step (one new token per sequence against a ``context``-long KV cache) or
    one prefill (``prompt`` tokens, empty cache). Returns (fn, args) with the step as ``fn``."""
    from transformers import DynamicCache

    model = build_model(c.params["model"], c.dtype, device, tiny=c.family == "framework")
    vocab = model.config.vocab_size
    batch = c.shape.get("batch", 1)
    phase = c.params.get("phase", "decode")
    if phase == "prefill":
        ids = torch.randint(0, vocab, (batch, c.shape["prompt"]), generator=gen).to(device)

        @torch.inference_mode()
        def prefill(x):
            # logits of the last position only, as serving engines (and workloads.build) do
            return model(input_ids=x, use_cache=True, logits_to_keep=1).logits

        return prefill, (ids,)
    context = c.shape["context"]
    ctx_ids = torch.randint(0, vocab, (batch, context), generator=gen).to(device)
    new = torch.randint(0, vocab, (batch, 1), generator=gen).to(device)
    cache = DynamicCache()
    # transformers 5.24 renamed ``past_key_values`` to ``cache``
    cache_kw = {"cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values": cache}
    with torch.inference_mode():
        model(input_ids=ctx_ids, use_cache=True, **cache_kw)

    @torch.inference_mode()
    def decode(x):
        out = model(input_ids=x, use_cache=True, **cache_kw).logits
        # back to `context` tokens, so every repeat is the same step
        cache.crop(-x.shape[1])
        return out

    return decode, (new,)
