"""One step of LLM inference: prefill of S prompt tokens, or decode of one token with a KV
cache of L positions, for batch B.

A step is traced in a float dtype (``DTYPES``: ``fp32``/``bf16``/``fp16``); lower
precisions of weights, activations and KV cache (``workloads.precision``) are a graph
pass over the traced step (``workloads.quantize``), not a tracing mode.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from .cache import trace_cache
from .steps import (  # noqa: F401  (re-exported: the step checks live in the torch-free .steps)
    DTYPE_POLICIES,
    FLOAT_DTYPES,
    PHASES,
    STEP_OPTIONS,
    DtypePolicy,
    check_dtype,
    check_options,
    check_step,
)
from .tracer import Tracer, run_traced


@dataclass(frozen=True)
class DtypeSpec:
    torch_dtype: torch.dtype
    policy: DtypePolicy


#: the float dtypes a model is traced in
DTYPES: dict[str, DtypeSpec] = {name: DtypeSpec(getattr(torch, tname), pol)
                                for name, (tname, pol) in DTYPE_POLICIES.items()}


def dtype_spec(dtype: object, allowed: tuple[str, ...] = FLOAT_DTYPES) -> DtypeSpec:
    """The float dtype to trace in; models without phases take only these (no quantisation)."""
    check_dtype(dtype, allowed)
    return DTYPES[dtype]


def _cache_kwarg(model: torch.nn.Module) -> str:
    # transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns until 5.40)
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def run_llm_step(model: torch.nn.Module, num_layers: int, phase: str, batch: int, context: int,
                 prompt: int, policy: DtypePolicy, kv: str = "static", logits: str = "last") -> Tracer:
    """Trace one step; the KV cache has ``num_layers`` layers (those the model holds)."""
    tracer = Tracer(policy)
    seq = prompt if phase == "prefill" else 1
    past = 0 if phase == "prefill" else context
    ids = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    tracer.tag(ids, "in:input_ids", "activation")
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        _cache_kwarg(model): trace_cache(tracer, num_layers, past, kv),
        "use_cache": True,
        # serving engines compute logits only for the last position of each sequence
        "logits_to_keep": 1 if logits == "last" else 0,
    }
    run_traced(model, (), kwargs, tracer=tracer)
    return tracer
