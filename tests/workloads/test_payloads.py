"""Typed op payloads (workloads.payloads): every traced op reads as its kind's record, a
malformed op is a one-line error, and the cost model's signature follows the payload."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from simulator.costmodel import _signature
from workloads import build, kinds
from workloads.expert_parallel import expert_shard
from workloads.op import Access, Op
from workloads.payloads import (
    Attention,
    Collective,
    Gemm,
    Moe,
    PayloadError,
    Quant,
    Scatter,
    Transfer,
    payload,
    quant,
    store,
)
from workloads.tensor_parallel import shard

GRAPHS = {
    "decode": lambda: build("llama-3.1-8b", "decode", batch=2, context=128),
    "prefill": lambda: build("llama-3.1-8b", "prefill", batch=1, prompt=64),
    "serving": lambda: build("llama-3.1-8b", "decode", batch=2, context=128, fusion="serving"),
    "tp2": lambda: shard(build("llama-3.1-8b", "decode", batch=2, context=128), 2),
    "w4a16": lambda: build("llama-3.1-8b", "decode", batch=2, context=128, dtype="w4a16+marlin"),
    "moe-ep2": lambda: expert_shard(build("mixtral-8x7b", "decode", batch=4, context=128), 2),
    "mla": lambda: build("deepseek-v3", "decode", batch=2, context=128),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_every_traced_op_reads_as_its_kinds_payload(name):
    g = GRAPHS[name]()
    seen = set()
    for op in g.ops:
        cls = kinds.REGISTRY[op.kind].payload
        p = payload(op)
        assert p is None if cls is None else isinstance(p, cls) or (p is None and cls.optional()), op
        seen.add(type(p))
        q = quant(op)
        assert q is None or isinstance(q, Quant)
    # the traced graphs exercise the records, not only their absence
    assert Gemm in seen and Attention in seen
    if name in ("tp2", "moe-ep2"):
        assert Collective in seen
    if name == "moe-ep2":
        assert Moe in seen


def test_gemm_and_attention_fields_match_the_trace():
    g = GRAPHS["prefill"]()
    att = next(op for op in g.ops if op.kind == "attention")
    assert payload(att) == Attention(sq=64, skv=64, b=1, h=32, kv_heads=8, d=128, dv=128, causal=True, mask=False)
    q = next(op for op in g.ops if op.kind == "matmul" and op.module.endswith("q_proj"))
    assert payload(q) == Gemm(m=64, n=4096, k=4096, batch=1)


def test_records_write_back_the_attrs_they_read():
    coll = Collective(kind="all_reduce", n_ranks=8, bytes=16384.0)
    assert coll.attrs() == {"collective": "all_reduce", "n": 8, "bytes": 16384.0}
    op = Op(0, "c10d::all_reduce", "collective", "bf16", attrs={**coll.attrs(), "tp": 8})
    assert payload(op) == replace(coll, launch="eager", custom=False)  # how it runs, resolved
    # a traced collective without attrs: its kind from its name, its bytes from its buffers
    bare = Op(0, "c10d::all_gather", "collective", "bf16", reads=[Access("x", 64, "activation")])
    assert payload(bare) == Collective(kind="all_gather", n_ranks=1, bytes=64.0, launch="eager", custom=False)
    xfer = Op(0, "copy", "transfer", "bf16", writes=[Access("y", 32, "kv_cache")], attrs={"src": "host"})
    assert payload(xfer) == Transfer(bytes=32.0, src="host")
    sc = Op(0, "aten::index_add", "scatter", "fp32", updates=10, distinct_targets=4)
    assert payload(sc) == Scatter(10, 4) and payload(replace(sc, kind="copy")) is None


def test_store_rewrites_an_ops_keys_in_place():
    # writers (tensor parallelism, quantisation) store records: a key the op has keeps its
    # place (the graph cache and the graph JSON see the traced order), None leaves a key alone
    op = Op(0, "aten::mm", "matmul", "bf16", attrs={"m": 4, "n": 8, "k": 2, "tp": 2})
    store(op, replace(payload(op), n=4))
    store(op, Quant(family="marlin", path="fused"))
    assert list(op.attrs.items()) == [("m", 4), ("n", 4), ("k", 2), ("tp", 2), ("quant", "marlin"),
                                      ("quant_path", "fused")]
    store(op, Collective(launch="graph"))
    assert list(op.attrs)[-1] == "launch" and op.attrs["n"] == 4


@pytest.mark.parametrize("attrs,what", [
    ({"m": 4, "n": 8}, "lacks attrs ['k']"),
    ({"m": 4, "n": "8", "k": 2}, "attrs['n'] = '8'"),
])
def test_a_malformed_op_is_a_one_line_error(attrs, what):
    with pytest.raises(PayloadError, match=r"op 3 \(matmul 'aten::mm'\)") as e:
        payload(Op(3, "aten::mm", "matmul", "bf16", attrs=attrs))
    assert what in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(PayloadError):
        payload(Op(3, "c10d::all_reduce", "collective", "bf16", attrs={"n": [2]}))


def _gemm_op(**attrs):
    return Op(0, "aten::mm", "matmul", "bf16", flops={"bf16": 1.0}, reads=[Access("a", 8, "activation")],
              writes=[Access("o", 8, "output")],
              attrs={"m": 4, "n": 8, "k": 16, "batch": 1, "quant": "marlin", "quant_path": "fused", **attrs})


def _attention_op(**attrs):
    return Op(0, "aten::scaled_dot_product_attention", "attention", "bf16", flops={"bf16": 1.0},
              attrs={"b": 1, "h": 4, "kv_heads": 2, "sq": 8, "skv": 8, "d": 16, "dv": 16, "causal": True,
                     "mask": False, **attrs})


@pytest.mark.parametrize("make,record", [(_gemm_op, Gemm), (_gemm_op, Quant), (_attention_op, Attention)])
def test_the_signature_follows_every_payload_field(make, record):
    res = frozenset()
    base = make()
    assert _signature(base, res) == _signature(make(unrelated="x"), res)  # not a payload key
    for f in fields(record):
        key = f.metadata["key"]
        v = base.attrs.get(key)
        other = (not v) if f.type.startswith("bool") else ("other" if "str" in f.type else (v or 0) + 3)
        assert _signature(make(**{key: other}), res) != _signature(base, res), key


def test_the_signature_follows_a_scatters_updates():
    sc = Op(0, "aten::index_add", "scatter", "fp32", updates=10, distinct_targets=4)
    assert _signature(sc, frozenset()) == _signature(replace(sc, id=5), frozenset())
    assert _signature(sc, frozenset()) != _signature(replace(sc, distinct_targets=5), frozenset())
    assert _signature(sc, frozenset()) != _signature(replace(sc, updates=11), frozenset())
