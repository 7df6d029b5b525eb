"""workloads.fusion: the kernels real engines launch, as a graph pass."""

from __future__ import annotations

import warnings

import pytest

from workloads import build
from workloads.fusion import FusionError, fuse, kernels_per_layer, policy

POLICIES = ("none", "compile", "serving", "gpt-fast")


@pytest.fixture(scope="module")
def llama():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {ph: build("llama-3.1-8b", phase=ph, batch=2, context=256, prompt=64, dtype="bf16")
                for ph in ("decode", "prefill")}


@pytest.mark.parametrize("phase", ["decode", "prefill"])
@pytest.mark.parametrize("pol", POLICIES)
def test_flops_conserved_and_bytes_never_grow(llama, phase, pol):
    g = llama[phase]
    f = fuse(g, pol)
    assert f.flops == pytest.approx(g.flops, rel=1e-12)
    assert f.bytes <= g.bytes
    assert f.kernels <= g.kernels
    by = g.bytes_by_role()
    fb = f.bytes_by_role()
    assert fb["weight"] == by["weight"] or policy(pol).merge_siblings  # a merged QKV reads its input once
    assert fb["weight"] <= by["weight"]


def test_kernels_per_llama_layer_match_a_hand_count(llama):
    """Llama decoder layer, counted by hand from the traced HF code.

    none (39): input RMSNorm 8 (to fp32, pow, mean, add eps, rsqrt, mul, to bf16, mul
    weight), q/k/v projections 3, rotary on q 5 and on k 5 (mul, neg, cat, mul, add),
    KV-cache write 1, SDPA 1, o_proj 1, residual add 1, post-attention RMSNorm 8,
    gate 1, SiLU 1, up 1, mul 1, down 1, residual add 1.
    compile (12): add+RMSNorm 1, q/k/v 3, rotary on q and k with the KV write 1, SDPA 1,
    o_proj 1, add+RMSNorm 1, gate 1, up 1, SiLU·mul 1, down 1.
    serving (10): add+RMSNorm 1, fused QKV 1, rotary 1, KV write 1, attention 1, o_proj 1,
    add+RMSNorm 1, fused gate-up 1, SiLU·mul 1, down 1.
    gpt-fast (10): add+RMSNorm 1, wqkv 1, rotary with the KV write 1, SDPA 1, wo 1,
    add+RMSNorm 1, w1 1, w3 1, SiLU·mul 1, w2 1.
    """
    g = llama["decode"]
    assert {pol: kernels_per_layer(fuse(g, pol)) for pol in POLICIES} == {
        "none": 39, "compile": 12, "serving": 10, "gpt-fast": 10}
    # gpt-fast merges the attention's projections only: its MLP keeps gate and up apart
    names = [op.module.rsplit(".", 1)[-1] for op in fuse(g, "gpt-fast").ops if ".layers.0." in op.module]
    assert "qkv_proj" in names and "gate_proj" in names and "up_proj" in names and "gate_up_proj" not in names


def test_serving_kernels_are_named_for_their_patterns(llama):
    names = {op.name for op in fuse(llama["decode"], "serving").ops if ".layers.1." in f"{op.module}."}
    assert {"fused::rms_norm", "fused::rotary", "fused::act_mul", "kv_cache_write",
            "fused::k_proj+q_proj+v_proj", "fused::gate_proj+up_proj"} <= names
    qkv = next(op for op in fuse(llama["decode"], "serving").ops if op.name == "fused::k_proj+q_proj+v_proj")
    # one GEMM of n = q + k + v features (Llama-3.1-8B: 4096 + 1024 + 1024)
    assert qkv.attrs["n"] == 6144 and qkv.module.endswith("self_attn.qkv_proj")


@pytest.mark.parametrize("pol", POLICIES)
def test_program_order_stays_valid(llama, pol):
    """Every activation an op reads was written by an earlier op (or is a step input)."""
    g = llama["prefill"]
    inputs = {a.tensor for op in g.ops for a in op.reads} - {a.tensor for op in g.ops for a in op.writes}
    seen = set(inputs)
    for op in fuse(g, pol).ops:
        for a in op.reads:
            assert a.tensor in seen or a.role in ("weight", "kv_cache"), (pol, op.name, a.tensor)
        seen.update(a.tensor for a in op.writes)


def test_fused_intermediates_stay_on_chip(llama):
    g = llama["decode"]
    f = fuse(g, "serving")
    norm = next(op for op in f.ops if op.name == "fused::rms_norm" and ".layers.1" in op.module)
    # the residual sum and the normalised output leave the kernel; the fp32 temporaries do not
    assert len(norm.writes) == 2


def test_other_architectures_fuse_too():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in ("gpt2", "mixtral-8x7b", "qwen2.5-0.5b"):
            g = build(model, phase="decode", batch=1, context=64, dtype="bf16")
            for pol in POLICIES:
                f = fuse(g, pol)
                assert f.flops == pytest.approx(g.flops, rel=1e-12) and f.bytes <= g.bytes
            assert fuse(g, "serving").kernels < g.kernels


def test_build_takes_the_policy_and_refuses_an_unknown_one():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = build("gpt2", phase="decode", context=32, fusion="compile")
    assert g.meta["fusion"] == "compile"
    with pytest.raises(FusionError, match="unknown fusion policy 'turbo'"):
        build("gpt2", fusion="turbo")
