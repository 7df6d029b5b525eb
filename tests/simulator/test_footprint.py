"""Footprint against hand-computed memory (llama-3.1-70b on h100-sxm at TP 1/2/4/8)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models import catalog
from simulator.footprint import DoesNotFit, FootprintError, check_fits, footprint, peak_activation_bytes
from workloads import build
from workloads.graph import WorkloadGraph
from workloads.op import Access, Op

# Llama 3.1 70B architecture (Hugging Face config.json of meta-llama/Llama-3.1-70B)
L70 = dict(num_layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128, intermediate=28672, vocab=128256)


def llama_params(c: dict) -> int:
    """Parameters of a Llama decoder from its architecture, counted by hand."""
    h, kvd = c["hidden"], c["kv_heads"] * c["head_dim"]
    attn = h * c["heads"] * c["head_dim"] * 2 + h * kvd * 2  # q, o and k, v projections
    mlp = 3 * h * c["intermediate"]  # gate, up, down
    per_layer = attn + mlp + 2 * h  # two RMSNorm weights
    return c["num_layers"] * per_layer + 2 * c["vocab"] * h + h  # untied embed + lm_head, final norm


def _graph(cfg: dict | None, batch=1, context=2048, phase="decode", dtype="bf16", ops=()) -> WorkloadGraph:
    meta = dict(model="llama-3.1-70b", phase=phase, batch=batch, context=context, prompt=512, dtype=dtype)
    if cfg is not None:
        meta["config"] = cfg
    g = WorkloadGraph(meta)
    g.extend(ops)
    return g


@pytest.fixture(scope="module")
def h100():
    return catalog.load("h100-sxm")


@pytest.fixture(scope="module")
def cfg70():
    return {**L70, "params": llama_params(L70), "num_experts": 0, "top_k": 0}


def test_params_are_about_70b(cfg70):
    # a sanity check of the hand count itself: Meta quotes 70.6B
    assert 70.0e9 < cfg70["params"] < 71.0e9


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_llama70b_hand_computed(h100, cfg70, tp):
    batch, context = 4, 8192
    g = _graph(cfg70, batch=batch, context=context)
    fp = footprint(g, h100, tp=tp)
    weights = cfg70["params"] * 2 / tp
    kv = 2 * L70["num_layers"] * math.ceil(L70["kv_heads"] / tp) * L70["head_dim"] * (context + 1) * batch * 2
    hbm = fp.tiers["hbm"]
    assert hbm.weights == pytest.approx(weights)
    assert hbm.kv_cache == pytest.approx(kv)
    assert hbm.capacity == h100.device.main_memory.capacity.value
    expect_fit = weights + kv <= h100.device.main_memory.capacity.value
    assert fp.fits == expect_fit
    # bf16 70B weights are ~141 GB: one 80 GB H100 cannot hold them, two can
    assert fp.fits == (tp >= 2)
    if not fp.fits:
        gib = (weights + kv) / 2**30
        assert (
            fp.reason
            == f"needs {gib:.1f} GiB in hbm, has {h100.device.main_memory.capacity.value / 2**30:.1f} GiB"
        )


def test_kv_budget_decides_at_tp2(h100, cfg70):
    cap = h100.device.main_memory.capacity.value
    free = cap - cfg70["params"] * 2 / 2
    per_seq = 2 * L70["num_layers"] * (L70["kv_heads"] // 2) * L70["head_dim"] * (32768 + 1) * 2
    largest = int(free // per_seq)
    assert footprint(_graph(cfg70, batch=largest, context=32768), h100, tp=2).fits
    assert not footprint(_graph(cfg70, batch=largest + 1, context=32768), h100, tp=2).fits


def test_check_fits_raises_user_facing_line(h100, cfg70):
    with pytest.raises(DoesNotFit) as e:
        check_fits(_graph(cfg70), h100, tp=1)
    assert getattr(e.value, "user_facing", False)
    msg = str(e.value)
    assert msg.startswith("does not fit: needs ") and " GiB in hbm, has " in msg and "\n" not in msg
    assert check_fits(_graph(cfg70), h100, tp=2).fits


def test_kv_heads_fewer_than_devices_replicate(h100):
    cfg = {**L70, "kv_heads": 2, "params": 1e9}
    kv4 = footprint(_graph(cfg), h100, tp=4).tiers["hbm"].kv_cache
    kv2 = footprint(_graph(cfg), h100, tp=2).tiers["hbm"].kv_cache
    assert kv4 == kv2  # one head per device either way


def test_weight_only_int4_keeps_bf16_cache(h100, cfg70):
    a = footprint(_graph(cfg70, dtype="int4"), h100, tp=2).tiers["hbm"]
    b = footprint(_graph(cfg70, dtype="bf16"), h100, tp=2).tiers["hbm"]
    assert a.weights == pytest.approx(b.weights / 4)
    assert a.kv_cache == b.kv_cache


def _op(i, reads=(), writes=(), kind="elementwise"):
    return Op(
        id=i,
        name="aten::x",
        kind=kind,
        dtype="bf16",
        reads=[Access(*r) for r in reads],
        writes=[Access(*w) for w in writes],
    )


def test_peak_activation_live_ranges():
    ops = [
        _op(0, reads=[("w:a", 100, "weight")], writes=[("x0", 10, "activation")]),
        _op(1, reads=[("x0", 10, "activation")], writes=[("x1", 20, "activation")]),
        _op(2, reads=[("x1", 20, "activation")], writes=[("x2", 5, "activation")]),
        _op(3, reads=[("x0", 10, "activation"), ("x2", 5, "activation")], writes=[("kv:0", 7, "kv_cache")]),
    ]
    # at op 2: x0 (read again at 3), x1 (read at 2), x2 (written at 2) are live together
    assert peak_activation_bytes(_graph(None, ops=ops)) == 35


def test_graph_fallback_without_config(h100):
    ops = [
        _op(0, reads=[("w:embed", 64, "weight")], writes=[("h", 8, "activation")], kind="gather"),
        _op(1, reads=[("w:q", 400, "weight"), ("h", 8, "activation")], writes=[("q", 8, "activation")]),
        _op(
            2, reads=[("w:q", 400, "weight"), ("kv:k0", 1000, "kv_cache")], writes=[("kv:k0", 10, "kv_cache")]
        ),
    ]
    fp = footprint(_graph(None, ops=ops), h100, tp=2)
    assert fp.tiers["hbm"].weights == (64 + 400) / 2
    assert fp.tiers["hbm"].kv_cache == 1000 / 2
    assert fp.notes["weights"].startswith("graph")


def test_placement_moves_kv_to_host_tier(h100, cfg70):
    placement = SimpleNamespace(tier_of=lambda role: "host" if role == "kv_cache" else "device")
    fp = footprint(_graph(cfg70, batch=64, context=32768), h100, placement, tp=2)
    assert set(fp.tiers) == {"hbm", "host"}
    assert fp.tiers["hbm"].kv_cache == 0 and fp.tiers["host"].kv_cache > 0
    assert fp.tiers["host"].capacity == pytest.approx(h100.tier("host").capacity.value / h100.num_devices)
    assert fp.by_tier.set_index("tier").loc["host", "kv_cache_gib"] > 0


def test_unknown_placement_tier_is_user_error(h100, cfg70):
    placement = SimpleNamespace(weights="cxl0", kv_cache="device", activations="device")
    with pytest.raises(FootprintError, match="cxl0"):
        footprint(_graph(cfg70), h100, placement)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 256),
    context=st.integers(1, 131072),
    tp=st.sampled_from([1, 2, 4, 8]),
)
def test_more_devices_never_need_more(h100, cfg70, batch, context, tp):
    g = _graph(cfg70, batch=batch, context=context)
    a, b = footprint(g, h100, tp=tp), footprint(g, h100, tp=tp * 2)
    assert b.tiers["hbm"].needed <= a.tiers["hbm"].needed
    assert not (a.fits and not b.fits)
    # more tokens never need less
    assert footprint(_graph(cfg70, batch=batch + 1, context=context), h100, tp=tp).tiers["hbm"].needed > (
        a.tiers["hbm"].needed
    )


def test_real_llama70b_build_matches_hand_count(h100, cfg70):
    g = build("llama-3.1-70b", phase="decode", batch=2, context=4096, dtype="bf16")
    for tp in (1, 2, 4, 8):
        hbm = footprint(g, h100, tp=tp).tiers["hbm"]
        assert hbm.weights == pytest.approx(cfg70["params"] * 2 / tp, rel=0.01)
        kv = 2 * L70["num_layers"] * math.ceil(L70["kv_heads"] / tp) * L70["head_dim"] * 4097 * 2 * 2
        assert hbm.kv_cache == pytest.approx(kv, rel=0.01)
        assert footprint(g, h100, tp=tp).fits == (tp >= 2)
