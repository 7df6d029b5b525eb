"""One step of LLM inference: prefill of S prompt tokens, or decode of one token with a KV
cache of L positions, for batch B, under a dtype policy.

dtype: ``fp32``/``bf16``/``fp16`` run the model in that dtype. ``fp8`` runs activations in
bf16 with 1-byte weights and matrix FLOPs labelled ``fp8``. ``int8``/``int4`` are
weight-only: activations and matrix FLOPs in bf16, weights read by matrix ops cost 1 / 0.5
byte per element (norm weights and embedding tables stay bf16).
"""

from __future__ import annotations

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


DTYPES: dict[str, DtypeSpec] = {name: DtypeSpec(getattr(torch, tname), pol)
                                for name, (tname, pol) in DTYPE_POLICIES.items()}


def dtype_spec(dtype: str, allowed: tuple[str, ...] = tuple(DTYPES)) -> DtypeSpec:
    check_dtype(dtype, allowed)
    return DTYPES[dtype]


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
        "past_key_values": trace_cache(tracer, num_layers, past, kv),
        "use_cache": True,
        # serving engines compute logits only for the last position of each sequence
        "logits_to_keep": 1 if logits == "last" else 0,
    }
    run_traced(model, (), kwargs, tracer=tracer)
    return tracer
