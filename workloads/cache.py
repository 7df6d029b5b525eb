"""A KV cache for tracing with the semantics of a static in-place cache (what serving
engines do), not HF ``DynamicCache``'s ``torch.cat`` of the whole cache every step.

Each layer's ``update`` records ONE op writing the new positions' K and V into the cache
(role ``kv_cache``, like vLLM's fused ``reshape_and_cache``), and returns K/V for all
``past + new`` positions as meta tensors tagged ``kv:<layer>:k`` / ``kv:<layer>:v``, which
the attention op then reads with role ``kv_cache``. With ``past == 0`` (prefill) the
attention reads the freshly computed K/V activations and the cache is only written.
``mode="dynamic"`` instead records HF ``DynamicCache``'s two ``torch.cat`` copies of the
whole cache (read L positions, write L+1), for comparison with eager Hugging Face runs.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from .op import Access


class TraceKVLayer(CacheLayerMixin):
    is_compileable = False
    is_sliding = False

    def __init__(self, tracer: Any, layer_idx: int, past: int, mode: str = "static") -> None:
        super().__init__()
        self.tracer, self.layer_idx, self.past, self.mode = tracer, layer_idx, past, mode

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        t = self.tracer
        self.is_initialized = True
        names = (f"kv:{self.layer_idx}:k", f"kv:{self.layer_idx}:v")
        new = key_states.shape[-2]
        if self.mode == "dynamic" and self.past > 0:
            # HF DynamicCache: torch.cat(old, new) per K and V copies the whole cache each step
            for n, x in zip(names, (key_states, value_states), strict=True):
                old = x.numel() // new * self.past * x.element_size()
                t.emit("aten.cat.default", "copy", reads=[Access(n, old, "kv_cache"), t.read(x)],
                       writes=[Access(n, old + x.numel() * x.element_size(), "kv_cache")],
                       shapes=[list(x.shape)], attrs={"positions": new, "past": self.past, "kv": "dynamic"},
                       dtype=_label(x))
        else:
            reads = [t.read(key_states), t.read(value_states)]
            writes = [Access(n, x.numel() * x.element_size(), "kv_cache")
                      for n, x in zip(names, (key_states, value_states), strict=True)]
            t.emit("kv_cache_write", "copy", reads=reads, writes=writes,
                   shapes=[list(key_states.shape), list(value_states.shape)],
                   attrs={"positions": new, "past": self.past}, dtype=_label(key_states))
        for n in names:
            t.roles[n] = "kv_cache"
        if self.past == 0:
            return key_states, value_states
        full = []
        t.suppress += 1
        try:
            for n, x in zip(names, (key_states, value_states), strict=True):
                shape = (*x.shape[:-2], self.past + new, x.shape[-1])
                y = torch.empty(shape, dtype=x.dtype, device=x.device)
                t.tag(y, n, "kv_cache")
                full.append(y)
        finally:
            t.suppress -= 1
        return full[0], full[1]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.past + query_length, 0

    def get_seq_length(self) -> int:
        return self.past

    def get_max_length(self) -> int:
        return -1


def _label(x: torch.Tensor) -> str:
    from .tracer import dtype_label

    return dtype_label(x.dtype)


def trace_cache(tracer: Any, num_layers: int, past: int, mode: str = "static") -> Cache:
    """``mode="static"`` (default): serving semantics; ``"dynamic"``: HF DynamicCache's
    concatenation, to compare with a measured eager Hugging Face decode step."""
    return Cache(layers=[TraceKVLayer(tracer, i, past, mode) for i in range(num_layers)])
