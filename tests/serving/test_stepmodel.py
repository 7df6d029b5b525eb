"""The step-time model against direct simulation (issue 14: <= 2% on a held-out grid)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import simulate
from simulator.stepmodel import StepModel, chunk_graph, mixed_graph
from workloads import build
from workloads.truncated import build_layers

MODEL, HW = "qwen2.5-0.5b", "h100-sxm-cal"


@pytest.fixture(scope="module")
def sm():
    return StepModel(MODEL, HW, cache_dir=False)


def _direct(chunks, d, ctx):
    g = mixed_graph(MODEL, chunks, d, ctx)
    return simulate(g, HW, launch="graph").step_time_s


def test_one_and_two_layer_traces_extrapolate_to_the_full_model(sm):
    for t in (48, 336):  # grid points: exact
        full = simulate(build(MODEL, phase="prefill", prompt=t, fusion="serving"), HW, launch="graph")
        assert sm.prefill_time(t) == pytest.approx(full.step_time_s, rel=1e-9)


def test_chunk_kernel_without_prefix_is_the_traced_causal_kernel():
    g = build_layers(MODEL, 1, phase="prefill", prompt=96, fusion="serving")
    a = simulate(g, HW, launch="graph").ops
    b = simulate(chunk_graph(g, 0), HW, launch="graph").ops
    att = a["kind"] == "attention"
    assert np.allclose(a.loc[att, "duration_s"], b.loc[att, "duration_s"], rtol=1e-12)
    more = simulate(chunk_graph(g, 4000), HW, launch="graph").ops
    assert (more.loc[att, "duration_s"].to_numpy() > a.loc[att, "duration_s"].to_numpy()).all()


def test_held_out_grid_within_2_percent(sm):
    """Random steps off the grid: prefill chunks with and without a prefix, decode batches
    of any size and context, and their mixes, against the whole model's graph simulated."""
    rng = np.random.default_rng(14)
    points = []
    for _ in range(4):  # mixed: one chunk over a prefix + decodes
        points.append(([(int(rng.integers(17, 900)), int(rng.integers(0, 3000)))], int(rng.integers(1, 200)),
                       int(rng.integers(20, 3000))))
    for _ in range(2):  # pure decode
        points.append(([], int(rng.integers(2, 300)), int(rng.integers(20, 4000))))
    for _ in range(2):  # pure prefill
        points.append(([(int(rng.integers(17, 2000)), 0)], 0, 0))
    errs = []
    for chunks, d, ctx in points:
        est = sm.step(chunks, d, ctx)
        errs.append(abs(est / _direct(chunks, d, ctx) - 1))
    assert max(errs) <= 0.02, errs


def test_memory_gives_the_kv_cache_what_weights_and_activations_leave(sm):
    m = sm.memory(8192, 0.9)
    assert m.kv_capacity == pytest.approx(m.usable - m.weights - m.activations)
    # qwen2.5-0.5b: 24 layers x 2 KV heads x 64 dims x (K, V) x 2 bytes
    assert m.kv_per_token == 24 * 2 * 64 * 2 * 2
    assert 0.9e9 < m.weights < 1.1e9


@pytest.mark.parametrize("precision", ["w4a16", "w4a16kv8", "fp8"])
def test_a_precision_sizes_weights_and_kv_as_the_full_build_does(precision):
    """The step model's memory (1- and 2-layer traces) agrees with the whole model's footprint:
    packed weights with their scales, and the KV cache in the precision's format."""
    from simulator.footprint import kv_bytes, weight_bytes

    q = StepModel(MODEL, HW, dtype=precision, cache_dir=False)
    full = build(MODEL, phase="decode", batch=1, context=1, dtype=precision, fusion="serving")
    m = q.memory(8192, 0.9)
    assert m.weights == pytest.approx(weight_bytes(full)[0], rel=1e-12)
    assert m.kv_per_token == pytest.approx(kv_bytes(full)[0] / 2, rel=1e-12)  # 2 tokens held after the step
    bf16 = StepModel(MODEL, HW, cache_dir=False).memory(8192, 0.9)
    assert m.weights < bf16.weights
    assert m.kv_per_token == (bf16.kv_per_token / 2 if "kv8" in precision else bf16.kv_per_token)


def test_the_disk_cache_key_follows_the_pricing_code(sm, monkeypatch):
    # cached step times answer only for the code that priced them: an edit to the cost model,
    # the physics or the graphs gives a new key
    import simulator.stepmodel as stepmodel

    assert len(stepmodel.pricing_code_hash()) == 128  # the graphs' and the pricing code's SHA-256s
    before = sm.key()
    monkeypatch.setattr(stepmodel, "pricing_code_hash", lambda: "an edited cost model")
    assert sm.key() != before
