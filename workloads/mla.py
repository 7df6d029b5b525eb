"""Multi-head latent attention (DeepSeek-V2/V3) in decode, costed as serving engines run it.

transformers' ``DeepseekV3Attention`` caches the compressed latent (``kv_lora_rank`` wide,
plus the shared rope key) and, every step, decompresses the *whole* cache through
``kv_b_proj`` into per-head keys and values before attention: for a context of ``L`` that
is a ``[B·L, kv_lora_rank] x [kv_lora_rank, H·(d_nope + d_v)]`` GEMM per layer and step.
Serving engines (vLLM, SGLang, TensorRT-LLM, FlashMLA; DeepSeek-V2 paper, section 2.1.3)
never do that in decode: they absorb ``kv_b_proj``'s two halves into the query and the
output, and attend over the latent directly (multi-query attention with one 576-wide
key and a 512-wide value shared by all heads). ``absorb(ops, cfg)`` rewrites each decode
layer's traced ops that way:

* ``mla::q_absorb``: the no-rope query part times ``W_UK`` per head:
  ``2·T·H·d_nope·r`` FLOPs, reading ``W_UK`` (``H·d_nope·r`` weights);
* ``mla::latent_attention``: every head's query (``r + d_rope`` wide) against the cached
  latent and rope key, and the probabilities times the latent: ``2·B·H·L·(2r + d_rope)``
  FLOPs, reading the cache once (``L·(r + d_rope)`` elements per sequence);
* ``mla::v_absorb``: the latent output times ``W_UV`` per head: ``2·T·H·r·d_v`` FLOPs,
  reading ``W_UV``; it writes the tensor the traced attention wrote, so ``o_proj`` follows.

The decompression GEMM, its copies and the traced attention are dropped. Prefill keeps
the traced (decompressed) form, as the engines do for new tokens. Under tensor
parallelism the rewritten attention splits heads like any other (``tensor_parallel``); the
engines' replicated latent cache per rank is not modelled.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .op import Access, Op
from .payloads import Gemm, payload

_ELEM = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


def applies(cfg: Any, phase: str) -> bool:
    return phase == "decode" and bool(getattr(cfg, "kv_lora_rank", None))


def absorb(ops: list[Op], cfg: Any) -> list[Op]:
    """``ops`` with each layer's decompress-and-attend replaced (module doc)."""
    r = int(cfg.kv_lora_rank)
    d_rope, d_nope, d_v = int(cfg.qk_rope_head_dim), int(cfg.qk_nope_head_dim), int(cfg.v_head_dim)
    out: list[Op] = []
    i = 0
    n = len(ops)
    while i < n:
        op = ops[i]
        if not (op.module.endswith(".kv_b_proj") and op.kind in ("matmul", "gemv")):
            out.append(op)
            i += 1
            continue
        attn_mod = op.module.rsplit(".", 1)[0]
        j = i + 1
        while j < n and not (ops[j].kind == "attention" and ops[j].module == attn_mod):
            j += 1
        if j == n:  # no attention after it: leave the layer as traced
            out.append(op)
            i += 1
            continue
        sdpa = ops[j]
        # ops between the decompression and attention that only reshape or copy its output go too
        between = ops[i + 1:j]
        dropped = [o for o in between if o.module == attn_mod and o.kind in ("copy", "view")]
        out.extend(o for o in between if not (o.module == attn_mod and o.kind in ("copy", "view")))
        caches: dict[str, int] = {}
        for o in (op, *dropped, sdpa):
            for x in o.reads:
                if x.role == "kv_cache":
                    caches[x.tensor] = max(caches.get(x.tensor, 0), x.bytes)
        out.extend(_absorbed(op, sdpa, caches, r, d_rope, d_nope, d_v))
        i = j + 1
    return [replace(o, id=k) for k, o in enumerate(out)]


def _absorbed(kvb: Op, sdpa: Op, caches: dict[str, int], r: int, d_rope: int, d_nope: int, d_v: int) -> list[Op]:
    att = payload(sdpa)
    h, skv = int(att.h), int(att.skv)
    q_read = sdpa.reads[0]
    elem = _ELEM.get(sdpa.dtype, 2)
    tokens = q_read.bytes // (elem * h * (d_nope + d_rope))
    batch = max(1, tokens // max(1, int(att.sq or 1)))
    w = next(x for x in kvb.reads if x.role == "weight")
    wk, wv = w.bytes * d_nope // (d_nope + d_v), w.bytes * d_v // (d_nope + d_v)
    dt = kvb.dtype
    tag = sdpa.id
    q_lat = Access(f"mla_q@{tag}", tokens * h * (r + d_rope) * elem, "activation")
    o_lat = Access(f"mla_o@{tag}", tokens * h * r * elem, "activation")
    label = next(iter(kvb.flops), dt)
    alabel = next(iter(sdpa.flops), dt)
    q_abs = Op(id=0, name="mla::q_absorb", kind="matmul", dtype=dt,
               flops={label: 2.0 * tokens * h * d_nope * r},
               reads=[Access(q_read.tensor, q_read.bytes, "activation"), Access(w.tensor + "#uk", wk, "weight")],
               writes=[q_lat], launches=1, module=kvb.module,
               attrs={**Gemm(m=tokens, n=r, k=d_nope, batch=h).attrs(), "mla": "q_absorb"},
               device=kvb.device, stream=kvb.stream)
    latent = Op(id=0, name="mla::latent_attention", kind="attention", dtype=sdpa.dtype,
                flops={alabel: 2.0 * batch * h * int(att.sq or 1) * skv * (2 * r + d_rope)},
                reads=[q_lat, *[Access(t, b, "kv_cache") for t, b in caches.items()]],
                writes=[o_lat], launches=1, module=sdpa.module,
                attrs={**sdpa.attrs, **replace(att, kv_heads=1).attrs(), "head_dim": r + d_rope, "mla": "latent"},
                device=sdpa.device, stream=sdpa.stream)
    v_abs = Op(id=0, name="mla::v_absorb", kind="matmul", dtype=dt,
               flops={label: 2.0 * tokens * h * r * d_v},
               reads=[o_lat, Access(w.tensor + "#uv", wv, "weight")],
               writes=[Access(x.tensor, x.bytes, x.role) for x in sdpa.writes], launches=1, module=kvb.module,
               attrs={**Gemm(m=tokens, n=d_v, k=r, batch=h).attrs(), "mla": "v_absorb"},
               device=kvb.device, stream=kvb.stream)
    return [q_abs, latent, v_abs]
