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
from .errors import WorkloadError
from .tracer import DtypePolicy, Tracer, run_traced

PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class DtypeSpec:
    torch_dtype: torch.dtype
    policy: DtypePolicy


#: the float dtypes a model is traced in
DTYPES: dict[str, DtypeSpec] = {
    "fp32": DtypeSpec(torch.float32, DtypePolicy()),
    "bf16": DtypeSpec(torch.bfloat16, DtypePolicy()),
    "fp16": DtypeSpec(torch.float16, DtypePolicy()),
}
FLOAT_DTYPES = tuple(DTYPES)


def dtype_spec(dtype: object, allowed: tuple[str, ...] = FLOAT_DTYPES) -> DtypeSpec:
    """The float dtype to trace in; models without phases take only these (no quantisation)."""
    if not isinstance(dtype, str) or dtype not in allowed:
        raise WorkloadError(f"dtype {str(dtype)!r} not allowed here; choose one of: {', '.join(allowed)}")
    return DTYPES[dtype]


def check_step(phase: str, batch: int, context: int, prompt: int, max_positions: int | None = None) -> None:
    if phase not in PHASES:
        raise WorkloadError(f"phase {phase!r} unknown; choose prefill or decode")
    if not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"batch must be a positive integer, got {batch!r}")
    if phase == "decode" and (not isinstance(context, int) or context < 0):
        raise WorkloadError(f"context must be a non-negative integer, got {context!r}")
    if phase == "prefill" and (not isinstance(prompt, int) or prompt < 1):
        raise WorkloadError(f"prompt must be a positive integer, got {prompt!r}")
    length = context + 1 if phase == "decode" else prompt
    if max_positions and length > max_positions:
        what = f"context <= {max_positions - 1}" if phase == "decode" else f"prompt <= {max_positions}"
        raise WorkloadError(f"{phase} needs {length} positions but the model allows {max_positions}; use {what}")


STEP_OPTIONS = {"kv": ("static", "dynamic"), "logits": ("last", "all")}


def check_options(options: dict[str, Any]) -> dict[str, str]:
    """LLM step options: ``kv`` static|dynamic cache, ``logits`` for the last|all positions."""
    out = {k: v[0] for k, v in STEP_OPTIONS.items()}
    for k, v in options.items():
        if k not in STEP_OPTIONS:
            raise WorkloadError(f"unknown LLM option {k!r}; allowed: {', '.join(STEP_OPTIONS)}")
        if v not in STEP_OPTIONS[k]:
            raise WorkloadError(f"option {k}={v!r} not allowed; choose one of: {', '.join(STEP_OPTIONS[k])}")
        out[k] = v
    return out


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
