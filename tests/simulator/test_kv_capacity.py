"""KV-cache precision changes cache capacity: tokens that fit, and so batch limits."""

from __future__ import annotations

import pytest

from hw_models import catalog
from roofsim.planner import api
from simulator.footprint import footprint, kv_capacity
from workloads import build

# Llama 3.1 8B: 32 layers x 8 KV heads x 128 head dim, K and V
PER_TOKEN_BF16 = 2 * 32 * 8 * 128 * 2


@pytest.fixture(scope="module")
def l4():
    return catalog.load("l4")


@pytest.mark.parametrize("spec,kv_bytes", [("bf16", 2), ("w16a16kv8", 1), ("w16a16kv4", 0.5)])
def test_capacity_follows_the_kv_format(l4, spec, kv_bytes):
    g = build("llama-3.1-8b", "decode", batch=1, context=1024, dtype=spec)
    cap = kv_capacity(g, l4)
    assert cap.bytes_per_token == PER_TOKEN_BF16 / 2 * kv_bytes
    fp = footprint(g, l4).tiers["gddr6"]
    assert cap.free_bytes == pytest.approx(fp.capacity - fp.weights - fp.activations)
    assert cap.tokens == int(cap.free_bytes // cap.bytes_per_token)


def test_an_fp8_cache_holds_twice_the_tokens(l4):
    a = kv_capacity(build("llama-3.1-8b", "decode", batch=1, context=1024, dtype="w4a16"), l4)
    b = kv_capacity(build("llama-3.1-8b", "decode", batch=1, context=1024, dtype="w4a16kv8"), l4)
    assert b.free_bytes == a.free_bytes  # same weights
    assert b.tokens in (2 * a.tokens, 2 * a.tokens + 1)
    assert b.sequences(4097) >= 2 * a.sequences(4097)


def test_quantised_weights_free_memory_for_the_cache(l4):
    bf = kv_capacity(build("llama-3.1-8b", "decode", batch=1, context=1024, dtype="bf16"), l4)
    q4 = kv_capacity(build("llama-3.1-8b", "decode", batch=1, context=1024, dtype="w4a16"), l4)
    assert q4.tokens > 2 * bf.tokens


def test_plan_max_batch_grows_with_a_smaller_cache():
    kw = dict(tp=[1], max_batch=True, batch_limit=1024, context=[8192], progress=False)
    b16 = api.plan("llama-3.1-8b", "l4", dtype="w4a16", **kw).iloc[0]
    b8 = api.plan("llama-3.1-8b", "l4", dtype="w4a16kv8", **kw).iloc[0]
    assert b16["fits"] and b8["fits"]
    assert b8["batch"] >= 2 * b16["batch"] - 1
