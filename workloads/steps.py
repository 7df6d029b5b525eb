"""What one step is, without torch: phases, dtypes and their policies, LLM step options,
and the checks a step request passes before anything is traced.

``workloads.phases`` pairs each dtype with its torch dtype for tracing; this module is
what a cached answer needs (``workloads.build`` answers from the graph cache without
importing torch or transformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import WorkloadError

PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class DtypePolicy:
    """How weights are stored and matrix FLOPs labelled, beyond what meta tensors carry.

    Meta has no int4 dtype, so weight-only quantisation is a policy: the model runs in
    ``bf16`` and every weight read by a matrix op (matmul, gemv, moe) costs
    ``weight_bytes`` per element; matrix FLOPs are labelled ``matmul_dtype``.
    """

    weight_bytes: float | None = None
    matmul_dtype: str | None = None


#: the float dtypes a step is traced in: name -> (torch dtype name, policy). Lower
#: precisions are a pass over the traced step (``workloads.precision``, ``workloads.quantize``).
DTYPE_POLICIES: dict[str, tuple[str, DtypePolicy]] = {
    "fp32": ("float32", DtypePolicy()),
    "bf16": ("bfloat16", DtypePolicy()),
    "fp16": ("float16", DtypePolicy()),
}
FLOAT_DTYPES = tuple(DTYPE_POLICIES)


def check_dtype(dtype: object, allowed: tuple[str, ...] = FLOAT_DTYPES) -> None:
    if not isinstance(dtype, str) or dtype not in allowed:
        raise WorkloadError(f"dtype {str(dtype)!r} not allowed here; choose one of: {', '.join(allowed)}")


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
