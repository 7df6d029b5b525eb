"""How a published case's ``precision`` and ``quant_kernel`` columns map to a roofsim
``Precision`` run by a kernel family (``workloads/quant_kernels.yaml``).

One table (``KERNELS``), matched in order on the lower-cased ``quant_kernel`` text; the
first pattern found decides the family and how the case's precision reads. A case no
row covers, or one whose format roofsim does not model (fp4, 2.5-bit, 2:4 sparse,
int4 weights with int8 activations), is not predicted, with the reason.
"""

from __future__ import annotations

import re

from workloads.precision import Precision

FLOAT = ("fp16", "bf16")

#: (substring of quant_kernel, family or None, why not when None). Order matters: "sparse"
#: before "marlin" (Sparse-Marlin is Marlin on 2:4 sparse weights), "qqq" before "marlin".
KERNELS: tuple[tuple[str, str | None, str], ...] = (
    ("sparse", None, "2:4 sparse weights are not modelled"),
    ("qqq", None, "int4 weights with int8 activations (w4a8) are not modelled"),
    ("nvfp4", None, "fp4 weights are not modelled"),
    ("exl2", "exllama", ""),
    ("exllama", "exllama", ""),
    ("marlin", "marlin", ""),
    ("bitsandbytes", "bnb-nf4", ""),
    ("deepgemm", "fp8-gemm", ""),
    ("float8 weight-only", "fused", ""),
    ("float8dq", "fp8-gemm", ""),
    ("float8 dynamic", "fp8-gemm", ""),
    ("fp8", "fp8-gemm", ""),
    ("tinygemm", "fused", ""),
    ("weight-only", "fused", ""),
    ("awq", "fused", ""),
    ("turbomind", "fused", ""),
    ("mlc-llm", "fused", ""),
    ("q4_0", "fused", ""),
    ("q8_0", "fused", ""),
    ("gptq", "fused", ""),
)

#: precision column -> (weights, activations) for the formats roofsim models
FORMATS = {
    "w4a16": ("int4", "bf16"), "int4": ("int4", "bf16"), "w8a16": ("int8", "bf16"), "int8": ("int8", "bf16"),
    "fp8": ("fp8", "fp8"), "w8a16-fp8": ("fp8", "bf16"),
}

#: llama.cpp block formats: 32 weights per fp16 scale (ggml q4_0 / q8_0 blocks)
_GGML_GROUP = 32


def precision_of(precision: str, quant_kernel: str) -> tuple[Precision | None, str]:
    """(the case's precision, "") or (None, why it is not predicted)."""
    prec = str(precision).strip().lower()
    text = str(quant_kernel).strip().lower()
    if prec in FLOAT:
        return Precision(prec, prec, prec), ""
    fam, why = None, f"precision {precision} with kernel {quant_kernel!r} has no kernel family mapping"
    for needle, family, reason in KERNELS:
        if needle in text:
            fam, why = family, reason
            break
    if fam is None:
        return None, why
    if prec not in FORMATS:
        return None, f"precision {precision} is not modelled"
    weights, acts = FORMATS[prec]
    if fam == "bnb-nf4":
        weights = "nf4"
    kv = "fp8" if "fp8 kv" in text else (acts if acts in FLOAT else "bf16")
    group = None
    m = re.search(r"group (\d+)|\bg(\d+)\b", text)
    if m:
        group = int(m.group(1) or m.group(2))
    elif "per-channel" in text or "int8 weight-only" in text:
        group = 0  # int8 weight-only schemes (gpt-fast, torchao int8wo) scale per output channel
    elif "q4_0" in text or "q8_0" in text:
        group = _GGML_GROUP
    return Precision(weights, acts, kv, group, fam), ""
