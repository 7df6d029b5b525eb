"""Hand-computed costs of single ops traced on meta tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import DtypePolicy, trace
from workloads.rules import expected_unique_experts


def _real(g):
    return [op for op in g.ops if op.kind != "view"]


@pytest.mark.parametrize("rows,kind", [(4, "matmul"), (1, "gemv")])
def test_linear_flops_and_bytes(rows, kind):
    with torch.device("meta"):
        lin = torch.nn.Linear(64, 32)
    x = torch.empty(rows, 64, device="meta")
    g = trace(lin, (x,))
    ops = _real(g)
    assert len(ops) == 1
    op = ops[0]
    assert op.kind == kind
    assert op.flops == {"fp32": 2 * rows * 32 * 64}
    assert op.attrs["m"] == rows and op.attrs["n"] == 32 and op.attrs["k"] == 64
    roles = {a.tensor: (a.bytes, a.role) for a in op.reads}
    assert roles["w:weight"] == (32 * 64 * 4, "weight")
    assert roles["w:bias"] == (32 * 4, "weight")
    assert sum(a.bytes for a in op.reads if a.role == "activation") == rows * 64 * 4
    assert op.bytes_written == rows * 32 * 4
    assert op.module == ""


def test_int4_policy_halves_matrix_weights_only():
    with torch.device("meta"):
        lin = torch.nn.Linear(64, 32, dtype=torch.bfloat16)
    x = torch.empty(8, 64, device="meta", dtype=torch.bfloat16)
    op = _real(trace(lin, (x,), policy=DtypePolicy(weight_bytes=0.5, matmul_dtype="bf16")))[0]
    w = {a.tensor: a.bytes for a in op.reads}
    assert w["w:weight"] == 32 * 64 // 2
    assert "bf16" in op.flops


def test_views_cost_nothing_and_inplace_writes_input():
    class M(torch.nn.Module):
        def forward(self, x):
            y = x.view(4, 8).transpose(0, 1)
            y.add_(1.0)
            return y

    g = trace(M(), (torch.empty(32, device="meta"),))
    views = [op for op in g.ops if op.kind == "view"]
    assert len(views) == 2 and all(op.launches == 0 and op.bytes == 0 for op in views)
    add = _real(g)[0]
    assert add.name == "aten.add_.Tensor"
    assert [a.tensor for a in add.writes] == [add.reads[0].tensor]
    assert add.bytes_written == 32 * 4 and add.flops == {"fp32": 32}


class Attn(torch.nn.Module):
    def __init__(self, h=8, hkv=2, d=32):
        super().__init__()
        self.h, self.hkv, self.d = h, hkv, d
        self.q = torch.nn.Linear(h * d, h * d, bias=False)

    def forward(self, x, k, v):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.h, self.d).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def test_sdpa_is_one_op_with_hand_flops():
    b, h, hkv, sq, skv, d = 2, 8, 2, 16, 40, 32
    with torch.device("meta"):
        m = Attn(h, hkv, d)
    x = torch.empty(b, sq, h * d, device="meta")
    k = torch.empty(b, hkv, skv, d, device="meta")
    v = torch.empty(b, hkv, skv, d, device="meta")
    g = trace(m, (x, k, v))
    att = [op for op in g.ops if op.kind == "attention"]
    assert len(att) == 1
    op = att[0]
    assert op.flops == {"fp32": 4 * b * h * sq * skv * d}
    assert {k_: op.attrs[k_] for k_ in ("b", "h", "sq", "skv", "d", "kv_heads")} == {
        "b": b, "h": h, "sq": sq, "skv": skv, "d": d, "kv_heads": hkv}
    # K and V read once each: b * hkv * skv * d elements of 4 bytes
    assert sorted(a.bytes for a in op.reads)[:2] == [b * hkv * skv * d * 4] * 2
    # nothing of the math under SDPA is recorded: only the q projection and the attention
    assert [o.kind for o in _real(g)] == ["matmul", "attention"]


def test_unknown_op_is_kept_with_bytes_and_counted():
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=-1).values * 2

    g = trace(M(), (torch.empty(4, 16, device="meta"),))
    unk = [op for op in g.ops if op.unknown]
    assert len(unk) == 1 and unk[0].kind == "unknown"
    assert unk[0].bytes_read == 4 * 16 * 4 and unk[0].bytes_written > 0
    assert g.unknown_ops() == {unk[0].name: 1}
    assert g.summary()["unknown_ops"] == {unk[0].name: 1}


def test_conv_flops():
    with torch.device("meta"):
        conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False)
    g = trace(conv, (torch.empty(2, 8, 10, 10, device="meta"),))
    op = _real(g)[0]
    assert op.kind == "conv"
    assert op.total_flops == 2 * 2 * 16 * 10 * 10 * (8 // 2) * 3 * 3


def test_scatter_on_real_index_counts_distinct_targets_exactly():
    class M(torch.nn.Module):
        def forward(self, src, idx):
            out = torch.zeros(5, 3)
            return out.index_add_(0, idx, src)

    idx = torch.tensor([0, 0, 1, 3])
    g = trace(M(), (torch.ones(4, 3), idx))
    op = [o for o in g.ops if o.kind == "scatter"][0]
    assert op.updates == 4 * 3
    assert op.distinct_targets == 3 * 3  # rows 0, 1, 3
    assert op.attrs["distinct_targets_from"] == "exact"


def test_scatter_add_real_index_exact():
    class M(torch.nn.Module):
        def forward(self, src, idx):
            return torch.zeros(4, 2).scatter_add_(0, idx, src)

    idx = torch.tensor([[0, 1], [0, 1], [2, 1]])
    op = [o for o in trace(M(), (torch.ones(3, 2), idx)).ops if o.kind == "scatter"][0]
    assert op.updates == 6 and op.distinct_targets == 3  # (0,0) (2,0) (1,1)


def test_moe_expected_experts_hand_values():
    assert expected_unique_experts(8, 2, 1) == pytest.approx(2.0)
    assert expected_unique_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_unique_experts(64, 8, 1) == pytest.approx(8.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 128), st.integers(1, 8), st.integers(1, 4096))
def test_moe_expected_experts_bounds(e, k, t):
    k = min(k, e)
    u = expected_unique_experts(e, k, t)
    assert k - 1e-9 <= u <= min(e, t * k) + 1e-9
    assert expected_unique_experts(e, k, t + 1) >= u - 1e-9
    assert math.isfinite(u)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 40), st.integers(1, 40), st.sampled_from([torch.float32, torch.float16]))
def test_linear_any_shape(m, k, n, dt):
    with torch.device("meta"):
        lin = torch.nn.Linear(k, n, bias=False, dtype=dt)
    op = _real(trace(lin, (torch.empty(3, m, k, device="meta", dtype=dt),)))[0]
    size = torch.empty(0, dtype=dt).element_size()
    assert op.total_flops == 2 * 3 * m * n * k
    assert op.bytes == (3 * m * k + n * k + 3 * m * n) * size
    assert op.kind == ("gemv" if 3 * m == 1 or n == 1 else "matmul")


def test_index_put_accumulate_is_scatter():
    class M(torch.nn.Module):
        def forward(self, vals, idx):
            return torch.zeros(6, 4).index_put_((idx,), vals, accumulate=True)

    idx = torch.tensor([5, 5, 5, 2, 0])
    op = [o for o in trace(M(), (torch.ones(5, 4), idx)).ops if o.name.startswith("aten.index_put")][0]
    assert op.kind == "scatter"
    assert op.updates == 5 * 4 and op.distinct_targets == 3 * 4


def test_rms_norm_is_one_kernel_where_the_backend_fuses_it():
    # PyTorch on CUDA runs F.rms_norm as one _fused_rms_norm kernel; the CPU (and meta)
    # decomposes it. The trace follows the backend asked for, same FLOPs per element.
    class Norm(torch.nn.Module):
        def forward(self, x, w):
            return F.rms_norm(x, (x.shape[-1],), w)

    x, w = torch.empty(32, 1024, device="meta"), torch.empty(1024, device="meta")
    fused = _real(trace(Norm(), (x, w), backend="cuda"))
    here = _real(trace(Norm(), (x, w)))
    assert [(op.kind, op.launches) for op in fused] == [("norm", 1)]
    assert len(here) > 1 and "norm" not in {op.kind for op in here}
    assert fused[0].total_flops == 5 * 32 * 1024
    # one pass: the input and the weight read once, the output written once
    assert fused[0].bytes == 4 * (2 * 32 * 1024 + 1024)
    assert fused[0].bytes < sum(op.bytes for op in here)
