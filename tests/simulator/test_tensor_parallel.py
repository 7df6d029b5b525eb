"""Megatron-style sharding of a traced LLM graph (workloads.tensor_parallel)."""

from __future__ import annotations

import pytest

from workloads.graph import WorkloadGraph
from workloads.op import Access, Op
from workloads.tensor_parallel import TensorParallelError, shard


def _layer_graph(heads=8, kv_heads=4) -> WorkloadGraph:
    """One decoder layer's skeleton: norm, q/k/v, attention, o_proj, add, gate/up, act, down."""
    g = WorkloadGraph(meta={"model": "toy", "config": {"heads": heads, "kv_heads": kv_heads}})
    H, I = 1024, 4096  # noqa: E741

    def mm(i, mod, x, out, k, n):
        return Op(i, "aten.mm", "gemv", "bf16", flops={"bf16": 2.0 * k * n},
                  reads=[Access(x, 2 * k, "activation"), Access(f"w:{mod}", 2 * k * n, "weight")],
                  writes=[Access(out, 2 * n, "output")], module=f"model.layers.0.{mod}",
                  attrs={"m": 1, "n": n, "k": k, "batch": 1})

    ops = [
        Op(0, "rmsnorm", "norm", "bf16", flops={"bf16": 4.0 * H}, reads=[Access("x", 2 * H, "activation")],
           writes=[Access("h", 2 * H, "output")], module="model.layers.0.input_layernorm"),
        mm(1, "self_attn.q_proj", "h", "q", H, H),
        mm(2, "self_attn.k_proj", "h", "k", H, H // 2),
        mm(3, "self_attn.v_proj", "h", "v", H, H // 2),
        Op(4, "kv_cache_write", "copy", "bf16", reads=[Access("k", H, "activation"), Access("v", H, "activation")],
           writes=[Access("kv:0:k", H, "kv_cache"), Access("kv:0:v", H, "kv_cache")], module="model.layers.0.self_attn"),
        Op(5, "sdpa", "attention", "bf16", flops={"bf16": 1e6},
           reads=[Access("q", 2 * H, "activation"), Access("kv:0:k", 1 << 20, "kv_cache"),
                  Access("kv:0:v", 1 << 20, "kv_cache")],
           writes=[Access("o", 2 * H, "output")], module="model.layers.0.self_attn",
           attrs={"b": 1, "h": heads, "kv_heads": kv_heads, "sq": 1, "skv": 512, "d": 128}),
        mm(6, "self_attn.o_proj", "o", "a", H, H),
        Op(7, "add", "elementwise", "bf16", flops={"bf16": H}, reads=[Access("x", 2 * H, "activation"),
                                                                       Access("a", 2 * H, "activation")],
           writes=[Access("x2", 2 * H, "output")], module="model.layers.0"),
        mm(8, "mlp.gate_proj", "x2", "g", H, I),
        mm(9, "mlp.up_proj", "x2", "u", H, I),
        Op(10, "silu_mul", "elementwise", "bf16", flops={"bf16": 2.0 * I},
           reads=[Access("g", 2 * I, "activation"), Access("u", 2 * I, "activation")],
           writes=[Access("m", 2 * I, "output")], module="model.layers.0.mlp"),
        mm(11, "mlp.down_proj", "m", "d", I, H),
    ]
    g.extend(ops)
    return g


def test_weights_flops_split_and_collectives_inserted():
    g = _layer_graph()
    s = shard(g, 4)
    coll = [op for op in s.ops if op.kind == "collective"]
    # one all-reduce after each row-parallel projection (o_proj, down_proj)
    assert [op.attrs["collective"] for op in coll] == ["all_reduce", "all_reduce"]
    assert all(op.attrs["n"] == 4 for op in coll)
    assert coll[0].attrs["bytes"] == 2 * 1024  # the full hidden state, a partial sum on each device
    wb = lambda gr: sum(a.bytes for op in gr.ops for a in op.reads if a.role == "weight")  # noqa: E731
    assert wb(s) == wb(g) // 4
    proj_flops = lambda gr: sum(op.total_flops for op in gr.ops if op.kind == "gemv")  # noqa: E731
    assert proj_flops(s) == pytest.approx(proj_flops(g) / 4)
    att = next(op for op in s.ops if op.kind == "attention")
    assert att.attrs["h"] == 2 and att.attrs["kv_heads"] == 1
    assert sum(a.bytes for a in att.reads if a.role == "kv_cache") == (2 << 20) // 4
    # the activation between gate/up and down works on the local slice
    act = next(op for op in s.ops if op.name == "silu_mul")
    assert act.bytes == g.ops[10].bytes // 4
    # replicated ops keep their size
    norm = next(op for op in s.ops if op.kind == "norm")
    assert norm.bytes == g.ops[0].bytes
    # the op after an all-reduce depends on the collective, not on the projection
    add = next(op for op in s.ops if op.name == "add")
    preds = list(s.g.predecessors(add.id))
    assert any(s.g.nodes[p]["op"].kind == "collective" for p in preds)
    assert len({op.id for op in s.ops}) == len(s.ops)


def test_degree_must_divide_heads_and_kv_heads():
    with pytest.raises(TensorParallelError, match="8 attention heads and the 4 KV heads"):
        shard(_layer_graph(8, 4), 3)
    with pytest.raises(TensorParallelError):
        shard(_layer_graph(8, 4), 8)  # divides heads, not kv heads
    assert getattr(TensorParallelError("x"), "user_facing", False)


def test_degree_one_is_identity():
    g = _layer_graph()
    assert shard(g, 1) is g


def test_real_llm_graph_shards_consistently():
    from workloads import build

    g = build("qwen2.5-0.5b", phase="decode", batch=1, context=128)
    cfg = g.meta["config"]
    s = shard(g, 2)
    coll = [op for op in s.ops if op.kind == "collective"]
    # two all-reduces per layer plus the logits all-gather
    assert sum(op.attrs["collective"] == "all_reduce" for op in coll) == 2 * cfg["num_layers"]
    wb = lambda gr: sum(a.bytes for op in gr.ops if op.kind in ("gemv", "matmul") for a in op.reads  # noqa: E731
                        if a.role == "weight")
    assert wb(s) == pytest.approx(wb(g) / 2, rel=0.01)
