"""Precision per tensor class: spelling, and the bytes of one Llama layer counted by hand
for each precision and kernel family (packed weights, group scales and zeros, KV cache)."""

from __future__ import annotations

import math

import pytest

from workloads import WorkloadError, build
from workloads.precision import ALIASES, Precision, parse, resolve
from workloads.quantkernels import KernelError, choose, family

# Llama 3.1 8B, one decoder layer (Hugging Face config.json of meta-llama/Llama-3.1-8B)
H, KVD, FFN, CTX = 4096, 8 * 128, 14336, 128
#: (elements, input dimension) of each projection of one layer
PROJ = {"q_proj": (H * H, H), "k_proj": (H * KVD, H), "v_proj": (H * KVD, H), "o_proj": (H * H, H),
        "gate_proj": (H * FFN, H), "up_proj": (H * FFN, H), "down_proj": (FFN * H, FFN)}


def _layer0(g):
    return [op for op in g.ops if ".layers.0." in f"{op.module}."]


def _weight_bytes(ops):
    return sum(a.bytes for op in ops for a in op.reads if a.role == "weight" and a.tensor.endswith("proj.weight"))


def _hand(bytes_per_weight: float, per_group: float, group: int | None) -> int:
    """One layer's projection weights: packed bytes plus per_group bytes per group
    (group None: one group per output channel, i.e. elements / input dimension)."""
    total = 0
    for elems, k in PROJ.values():
        groups = elems // (group or k)
        total += math.ceil(elems * bytes_per_weight + groups * per_group)
    return total


@pytest.mark.parametrize("spec,bpw,per_group,group", [
    ("bf16", 2.0, 0.0, None),
    ("w4a16", 0.5, 2 + 2, 128),                    # fused: bf16 scale and zero per 128
    ("w4a16+marlin", 0.5, 2, 128),                 # fp16 scale, symmetric (no zeros)
    ("w4a16+exllama", 0.5, 2 + 0.5, 128),          # fp16 scale, 4-bit packed zero
    ("w4a16+bnb-nf4", 0.5, 4, 64),                 # fp32 absmax per 64
    ("wnf4a16", 0.5, 4, 64),                       # nf4 defaults to bitsandbytes
    ("w4a16g32", 0.5, 4, 32),                      # group size from the spec
    ("w8a16", 1.0, 4, 128),
    ("w8a16g0", 1.0, 4, None),                     # one group per output channel
    ("fp8", 1.0, 4, None),                         # fp8-gemm: fp32 scale per output channel
    ("w8a8", 1.0, 4, None),                        # int8-gemm: fp32 scale per output channel
])
def test_one_layer_weight_bytes_by_hand(spec, bpw, per_group, group):
    g = build("llama-3.1-8b", "decode", batch=1, context=CTX, dtype=spec)
    assert _weight_bytes(_layer0(g)) == _hand(bpw, per_group, group)


def test_dequant_gemm_writes_and_reads_a_16bit_copy():
    g = build("llama-3.1-8b", "decode", batch=1, context=CTX, dtype="w4a16+dequant-gemm")
    ops = _layer0(g)
    deq = [op for op in ops if op.name == "quant::dequantize"]
    assert len(deq) == 7
    # each writes its whole weight in bf16, and the GEMM after it reads that copy
    assert sum(op.bytes_written for op in deq) == sum(e for e, _ in PROJ.values()) * 2
    copies = {a.tensor for op in deq for a in op.writes}
    gemm_reads = sum(a.bytes for op in ops if op.kind in ("gemv", "matmul") for a in op.reads if a.tensor in copies)
    assert gemm_reads == sum(e for e, _ in PROJ.values()) * 2
    assert sum(op.bytes_read for op in deq) == _hand(0.5, 4, 64)


def test_fp8_activations_quantised_once_per_input():
    g = build("llama-3.1-8b", "decode", batch=2, context=CTX, dtype="fp8")
    q = [op for op in _layer0(g) if op.name == "quant::quantize"]
    # q/k/v share one input, gate/up another; o_proj and down_proj have their own
    assert len(q) == 4
    hidden_in = 2 * H * 2  # batch 2 rows of bf16
    assert q[0].bytes_read == 2 * hidden_in  # two passes: absolute maximum, then convert
    assert q[0].bytes_written == 2 * H  # one byte per element
    gemms = [op for op in _layer0(g) if op.kind in ("gemv", "matmul") and op.flops]
    assert all(set(op.flops) == {"fp8"} for op in gemms)


@pytest.mark.parametrize("spec,kv_bytes", [("bf16", 2), ("w4a16kv8", 1), ("w16a16kv8", 1), ("w4a16kv4", 0.5),
                                           ("w4afp16kvint8", 1)])
def test_kv_cache_bytes_follow_the_kv_format(spec, kv_bytes):
    g = build("llama-3.1-8b", "decode", batch=3, context=CTX, dtype=spec)
    ops = _layer0(g)
    write = sum(a.bytes for op in ops for a in op.writes if a.role == "kv_cache")
    read = sum(a.bytes for op in ops for a in op.reads if a.role == "kv_cache")
    assert write == 2 * 3 * KVD * kv_bytes  # K and V of the new token, batch 3
    assert read == 2 * 3 * KVD * (CTX + 1) * kv_bytes
    assert g.meta["kv_cache_bytes"] == 32 * 2 * 3 * KVD * (CTX + 1) * kv_bytes


def test_meta_weight_bytes_counts_the_whole_model():
    bf = build("llama-3.1-8b", "decode", batch=1, context=CTX, dtype="bf16")
    q = build("llama-3.1-8b", "decode", batch=1, context=CTX, dtype="w4a16+marlin")
    proj = 32 * sum(e for e, _ in PROJ.values())
    # marlin packs the 32 layers' projections; embeddings, norms and lm_head stay bf16
    assert q.meta["weight_bytes"] == bf.meta["weight_bytes"] - proj * 2 + 32 * _hand(0.5, 2, 128)


@pytest.mark.parametrize("text", ["bf16", "fp16", "fp32", "w4a16", "w4a16kv8", "w8a8", "wfp8a16", "wnf4a16g64",
                                  "w4afp16kv8", "w16a16kv4", "w4a16g0+marlin", "wfp8afp8kv8"])
def test_spelling_round_trips(text):
    p = parse(text)
    assert parse(str(p)) == p
    assert str(p) == text


def test_aliases_are_the_old_dtypes():
    assert parse("int4") == Precision("int4", "bf16", "bf16")
    assert parse("int8") == Precision("int8", "bf16", "bf16")
    assert parse("fp8") == Precision("fp8", "fp8", "bf16")
    assert set(ALIASES) == {"fp32", "bf16", "fp16", "fp8", "int8", "int4"}


def test_flags_override_the_spec():
    assert resolve("bf16", weights="4", kv_cache="8") == parse("w4a16kv8")
    assert resolve("w4a16", group_size=32, kernel="marlin") == parse("w4a16g32+marlin")
    assert resolve("bf16", activations="fp16") == parse("fp16")


@pytest.mark.parametrize("text,needle", [("w3a16", "weights '3'"), ("w4a4", "activations '4'"),
                                         ("w4a16kv2", "kv cache '2'"), ("int3", "not a precision"),
                                         ("w4a16+", "kernel family"), ("", "must be a precision"),
                                         ("wfp8afp8g64", "--group-size applies to int4, int8, nf4 weights"),
                                         ("w16a16g32", "--group-size applies")])
def test_bad_spellings_are_one_line(text, needle):
    with pytest.raises(WorkloadError) as e:
        parse(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_family_choice_and_refusals():
    assert choose(parse("bf16")) is None
    assert choose(parse("w4a16")).name == "fused"
    assert choose(parse("fp8")).name == "fp8-gemm"
    assert choose(parse("w8a8")).name == "int8-gemm"
    with pytest.raises(KernelError, match="known: fused, marlin"):
        family("nope")
    with pytest.raises(KernelError, match="kernels for it: fused, marlin, exllama"):
        choose(parse("w4a16+fp8-gemm"))
    with pytest.raises(KernelError, match="needs quantised weights"):
        choose(parse("bf16+marlin"))
    with pytest.raises(KernelError, match="not on a cpu"):
        choose(parse("w4a16+marlin"), "cpu")


def test_vision_models_refuse_quantised_precisions():
    with pytest.raises(WorkloadError, match="w4a16.*not allowed here"):
        build("vit-b-16", batch=1, dtype="int4", given={"dtype"})
