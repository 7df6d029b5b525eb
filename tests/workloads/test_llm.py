"""Whole-model graphs: parameter bytes, KV-cache traffic, replication, MoE, dtype policy."""

from __future__ import annotations

import json

import pytest

from workloads import WorkloadError, build
from workloads.configfile import make_config
from workloads.rules import expected_unique_experts
from workloads.zoo import build_llm

TINY = {
    "model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 4096, "tie_word_embeddings": False,
}


def tiny_params() -> int:
    h, i, v, kvd = 64, 128, 1000, 2 * 16
    layer = h * h * 2 + h * kvd * 2 + 3 * h * i + 2 * h  # q,o; k,v; gate,up,down; 2 norms
    return v * h * 2 + 3 * layer + h  # embed + lm_head, layers, final norm


@pytest.fixture
def tiny_json(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(TINY))
    return str(p)


def _weight_reads(g):
    return sum(a.bytes for op in g.ops for a in op.reads if a.role == "weight")


def _kv_reads(g):
    return sum(a.bytes for op in g.ops for a in op.reads if a.role == "kv_cache")


def _kv_writes(g):
    return sum(a.bytes for op in g.ops for a in op.writes if a.role == "kv_cache")


@pytest.mark.parametrize("batch,context", [(1, 64), (3, 100)])
def test_tiny_llama_decode_hand_bytes(tiny_json, batch, context):
    g = build(tiny_json, "decode", batch=batch, context=context, dtype="bf16")
    assert g.meta["config"]["params"] == tiny_params()
    assert g.meta["weight_bytes"] == tiny_params() * 2
    # every weight read once per step; the embedding table only in the rows gathered; the
    # rotary inv_freq buffer (head_dim/2 fp32 values) is a constant too
    assert _weight_reads(g) == (tiny_params() - 1000 * 64) * 2 + batch * 64 * 2 + 8 * 4
    # the attention reads L + 1 positions (the new token's K/V were just written to the cache)
    assert _kv_reads(g) == 2 * 3 * 2 * 16 * (context + 1) * batch * 2
    assert _kv_writes(g) == 2 * 3 * 2 * 16 * 1 * batch * 2
    assert g.meta["kv_cache_bytes"] == 2 * 3 * 2 * 16 * (context + 1) * batch * 2
    assert not g.unknown_ops()
    att = [op for op in g.ops if op.kind == "attention"]
    assert len(att) == 3 and all(op.attrs["skv"] == context + 1 and op.attrs["sq"] == 1 for op in att)
    assert all(op.kind == "gemv" for op in g.ops if op.name.startswith("aten.mm")) == (batch == 1)


def test_tiny_llama_prefill(tiny_json):
    g = build(tiny_json, "prefill", batch=2, prompt=16, dtype="fp32")
    assert _kv_reads(g) == 0
    assert _kv_writes(g) == 2 * 3 * 2 * 16 * 16 * 2 * 4
    att = [op for op in g.ops if op.kind == "attention"]
    assert all(op.attrs["sq"] == 16 and op.attrs["skv"] == 16 and op.attrs["causal"] for op in att)
    # logits for the last position only: lm_head is a [2, 64] x [64, 1000] product
    lm = [op for op in g.ops if op.module == "lm_head" and op.kind in ("matmul", "gemv")]
    assert len(lm) == 1 and lm[0].attrs["m"] == 2 and lm[0].attrs["n"] == 1000


TINY_OTHERS = {
    "gpt2": {"vocab_size": 500, "n_positions": 128, "n_embd": 64, "n_layer": 3, "n_head": 4},
    "mixtral": {"vocab_size": 500, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
                "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
                "num_experts_per_tok": 2},
    # MLA attention, two dense layers before the MoE ones: layer 2 is the one replicated
    "deepseek_v3": {"vocab_size": 500, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
                    "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 4,
                    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "n_group": 2,
                    "topk_group": 1, "first_k_dense_replace": 2, "kv_lora_rank": 16, "q_lora_rank": 24,
                    "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 16},
    "qwen3_moe": {"vocab_size": 500, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
                  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                  "num_experts": 8, "num_experts_per_tok": 2},
}


@pytest.mark.parametrize("phase", ["decode", "prefill"])
@pytest.mark.parametrize("model_type", ["llama", "gpt2", "mixtral", "deepseek_v3", "qwen3_moe"])
def test_replicated_layers_equal_full_trace(phase, model_type):
    values = TINY_OTHERS.get(model_type) or {k: v for k, v in TINY.items() if k != "model_type"}
    cfg = make_config(model_type, values)
    kw = dict(phase=phase, batch=2, context=32, prompt=8, dtype="bf16", meta={})
    a = build_llm(cfg, replicate=True, **kw)
    b = build_llm(cfg, replicate=False, **kw)
    assert len(a) == len(b) and len(a) > 50

    def sig(op, named):
        def t(x):  # weights and cache keep names; activations are compared through edges
            return x.tensor if x.tensor.startswith(("w:", "kv:")) else ""
        return (op.name, op.kind, op.flops, op.module, op.launches,
                [(t(x), x.bytes, x.role) for x in op.reads], [(t(x), x.bytes, x.role) for x in op.writes])

    assert [sig(o, True) for o in a.ops] == [sig(o, True) for o in b.ops]
    assert set(a.g.edges()) == set(b.g.edges())
    assert a.meta["weight_bytes"] == b.meta["weight_bytes"]


def test_gpt2_tied_embeddings_counted_once():
    g = build("gpt2", "decode", batch=2, context=64, dtype="fp16")
    h, v, p, layers = 768, 50257, 1024, 12
    layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
    params = v * h + p * h + layers * layer + 2 * h
    assert g.meta["config"]["params"] == params == 124_439_808
    assert g.meta["weight_bytes"] == params * 2
    # wte is read twice (gathered rows, then in full by the tied lm_head), under one name
    wte = [a for op in g.ops for a in op.reads if a.tensor == "w:transformer.wte.weight"]
    assert sorted(a.bytes for a in wte) == [2 * h * 2, v * h * 2]
    assert _kv_reads(g) == 2 * layers * 12 * 64 * 65 * 2 * 2


def test_llama_8b_decode_kv_and_weights():
    L, B = 4096, 1
    g = build("llama-3.1-8b", "decode", batch=B, context=L, dtype="bf16")
    c = g.meta["config"]
    assert (c["num_layers"], c["kv_heads"], c["head_dim"]) == (32, 8, 128)
    assert _kv_reads(g) == 2 * 32 * 8 * 128 * (L + 1) * B * 2
    inv_freq = c["head_dim"] // 2 * 4
    assert _weight_reads(g) == (c["params"] - c["vocab"] * c["hidden"]) * 2 + B * c["hidden"] * 2 + inv_freq
    assert {op.kind for op in g.ops} <= {"view", "elementwise", "copy", "gemv", "reduction", "attention",
                                         "gather"}
    assert sum(1 for op in g.ops if op.kind == "attention") == 32
    for key in ("model", "phase", "batch", "context", "prompt", "dtype"):
        assert key in g.meta


def test_dtype_policies():
    base = build("llama-3.1-8b", "decode", context=128, dtype="bf16")
    q4 = build("llama-3.1-8b", "decode", context=128, dtype="int4")
    f8 = build("llama-3.1-8b", "decode", context=128, dtype="fp8")
    mm = [op for op in base.ops if op.kind == "gemv"]
    mm4 = [op for op in q4.ops if op.kind == "gemv"]
    w = sum(a.bytes for op in mm for a in op.reads if a.role == "weight")
    w4 = sum(a.bytes for op in mm4 for a in op.reads if a.role == "weight")
    # int4 is w4a16 on the default fused kernel: 0.5 byte per element plus a bf16 scale and
    # zero (4 bytes) per group of 128, against 2 bytes per element in bf16
    assert w4 == w // 2 * 0.5 + w // 2 // 128 * 4
    assert all("bf16" in op.flops for op in mm4)
    # fp8 runs the decoder's GEMMs on fp8 units; lm_head stays 16-bit (as vLLM keeps it)
    assert all(set(op.flops) == ({"bf16"} if op.module == "lm_head" else {"fp8"})
               for op in f8.ops if op.kind == "gemv")
    assert q4.flops == pytest.approx(base.flops)


def test_mixtral_moe_op():
    g = build("mixtral-8x7b", "decode", batch=1, context=64)
    moe = [op for op in g.ops if op.kind == "moe"]
    assert len(moe) == 32
    op = moe[0]
    h, i, e = 4096, 14336, 8
    unique = expected_unique_experts(e, 2, 1)
    assert unique == pytest.approx(2.0)
    assert op.bytes_by_role()["weight"] == round(unique * 2 * h * i * 2) + round(unique * h * i * 2) + e * h * 2
    assert op.total_flops == pytest.approx(1 * 2 * 2 * 3 * h * i + 2 * h * e + 5 * 2 * i)
    assert op.attrs["tokens"] == 1 and op.attrs["top_k"] == 2
    # no expert matmuls ran: the only matrix ops are attention projections and lm_head
    assert not any("experts" in o.module for o in g.ops if o.kind != "moe")


@pytest.mark.parametrize("model,params,moe_layers", [
    # published totals: 405B (Llama 3.1 model card), 671B (DeepSeek-V3 report, without the
    # 14B MTP module), 30.5B (Qwen3-30B-A3B model card)
    ("llama-3.1-405b", 405e9, 0), ("deepseek-v3", 671e9, 58), ("qwen3-30b-a3b", 30.5e9, 48),
])
def test_scale_out_zoo_models(model, params, moe_layers):
    g = build(model, "decode", batch=2, context=64)
    c = g.meta["config"]
    assert c["params"] == pytest.approx(params, rel=0.03)
    moe = [op for op in g.ops if op.kind == "moe"]
    assert len(moe) == moe_layers
    assert len([op for op in g.ops if op.kind == "attention"]) == c["num_layers"]
    if moe_layers:
        assert moe[0].attrs["top_k"] == 8 and moe[0].attrs["num_experts"] == c["num_experts"]


def test_olmoe_moe_expectation_grows_with_batch():
    small = build("olmoe-1b-7b", "decode", batch=1, context=16)
    big = build("olmoe-1b-7b", "decode", batch=32, context=16)
    e1 = [op for op in small.ops if op.kind == "moe"][0].attrs["expected_experts"]
    e32 = [op for op in big.ops if op.kind == "moe"][0].attrs["expected_experts"]
    assert e1 == pytest.approx(8.0)
    assert e32 == pytest.approx(64 * (1 - (1 - 8 / 64) ** 32))


@pytest.mark.parametrize("kwargs,msg", [
    (dict(model="no-such-model"), "unknown model"),
    (dict(model="gpt2", batch=0), "batch"),
    (dict(model="gpt2", context=4096), "positions"),
    (dict(model="gpt2", dtype="int3"), "dtype"),
    (dict(model="gpt2", phase="train"), "phase"),
    (dict(model="vit-b-16", dtype="int4"), "dtype"),
    (dict(model="no_such_pkg.mod:fn"), "cannot load"),
    (dict(model="/nonexistent/config.json"), "not found"),
])
def test_bad_input_is_user_facing(kwargs, msg):
    with pytest.raises(WorkloadError, match=msg) as e:
        build(**kwargs)
    assert e.value.user_facing is True


def test_dynamic_cache_and_all_logits_options(tiny_json):
    L, B = 50, 2
    per_layer = 2 * 16 * B * 2  # kv_heads * head_dim * batch * bf16 bytes, per position, K or V
    g = build(f"{tiny_json}", "decode", batch=B, context=L, kv="dynamic")
    cats = [op for op in g.ops if op.attrs.get("kv") == "dynamic"]
    assert len(cats) == 2 * 3
    assert sum(a.bytes for op in cats for a in op.reads if a.role == "kv_cache") == 2 * 3 * per_layer * L
    assert _kv_writes(g) == 2 * 3 * per_layer * (L + 1)
    assert g.meta["kv_cache_bytes"] == 2 * 3 * per_layer * (L + 1) and g.meta["kv"] == "dynamic"
    p = build(tiny_json, "prefill", batch=B, prompt=8, logits="all")
    lm = [op for op in p.ops if op.module == "lm_head" and op.kind == "matmul"]
    assert lm[0].attrs["m"] == B * 8
    with pytest.raises(WorkloadError, match="kv"):
        build(tiny_json, kv="paged")
    assert build("llama-3.1-8b[kv=dynamic]", context=16).meta["kv"] == "dynamic"


def test_deepseek_decode_attends_over_the_latent():
    B, L = 4, 1024
    g = build("deepseek-v3", "decode", batch=B, context=L)
    att = [op for op in g.ops if op.kind == "attention"]
    assert len(att) == 61 and all(op.name == "mla::latent_attention" for op in att)
    op = att[0]
    h, r, rope = 128, 512, 64
    # scores against the 576-wide latent+rope key and the 512-wide latent value, every head
    assert op.total_flops == pytest.approx(2 * B * h * (L + 1) * (2 * r + rope))
    # the cache is read once for all heads: latent and rope key of L+1 positions per sequence
    assert op.bytes_by_role()["kv_cache"] == B * (L + 1) * (r + rope) * 2
    # no GEMM decompresses the cache: every kv_b_proj op is an absorption over the new tokens only
    kvb = [o for o in g.ops if o.module.endswith("kv_b_proj") and o.kind == "matmul"]
    assert {o.name for o in kvb} == {"mla::q_absorb", "mla::v_absorb"}
    assert all(o.attrs["m"] == B for o in kvb)
    pre = build("deepseek-v3", "prefill", batch=1, prompt=64)
    assert not any(o.name.startswith("mla::") for o in pre.ops)  # prefill keeps the traced form
