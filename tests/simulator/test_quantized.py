"""Quantised kernels through the one cost model: family efficiencies as parameters,
distinct and explained step times per family, fp8 only where the hardware has it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models import catalog
from simulator import simulate
from simulator.costmodel import graph_costs, graph_terms, op_cost
from simulator.params import Params
from simulator.precision_check import PrecisionError, check
from workloads import build
from workloads.graph import WorkloadGraph
from workloads.op import Access, Op
from workloads.precision import parse
from workloads.quantize import quantize
from workloads.quantkernels import choose, family

FAMILIES_W4 = ("fused", "marlin", "exllama", "bnb-nf4", "dequant-gemm")


@pytest.fixture(scope="module")
def l4_steps():
    out = {}
    for fam in FAMILIES_W4:
        g = build("llama-3.1-8b", "decode", batch=1, context=2048, dtype=f"w4a16+{fam}")
        out[fam] = simulate(g, "l4")
    return out


def test_each_family_gives_its_own_step_time(l4_steps):
    times = {f: r.step_time_s for f, r in l4_steps.items()}
    assert len({round(t, 9) for t in times.values()}) == len(FAMILIES_W4), times
    # writing and re-reading a 16-bit copy of every weight costs more than 16-bit weights do
    bf16 = simulate(build("llama-3.1-8b", "decode", batch=1, context=2048, dtype="bf16"), "l4").step_time_s
    assert times["dequant-gemm"] > bf16 > max(t for f, t in times.items() if f != "dequant-gemm")


def test_the_dominant_term_is_reported(l4_steps):
    for fam, r in l4_steps.items():
        q = r.summary()["quantized"]
        assert q["kernel"] == fam
        parts = q["parts"]
        if fam == "dequant-gemm":
            assert set(parts) == {"dequantize", "dequantized"}
            assert parts["dequantize"]["dominant"].startswith("memory:")
        else:
            assert set(parts) == {"fused"}
            assert parts["fused"]["dominant"] == "memory:gddr6"  # batch-1 decode streams weights
        assert all(0 < p["share"] < 1 for p in parts.values())


def test_exllama_multiplies_on_cuda_cores_and_falls_back_above_50_rows():
    r = simulate(build("llama-3.1-8b", "decode", batch=32, context=512, dtype="w4a16+exllama"), "l4")
    assert r.quantized()["parts"]["fused"]["dominant"] == "compute"
    ops = r.to_pandas()
    assert set(ops.loc[ops["quant_path"] == "fused", "resource"]) == {"dev0.compute"}
    big = simulate(build("llama-3.1-8b", "decode", batch=64, context=512, dtype="w4a16+exllama"), "l4")
    assert set(big.quantized()["parts"]) == {"dequantize", "dequantized"}


def test_family_efficiencies_are_parameters():
    system = catalog.load("a100-80gb")
    p = Params(system)
    fp16 = system.device.vector["fp16"].peak.value
    assert p.rate("unit:vector.fp16@quant.exllama", 1e9) == pytest.approx(0.15 * fp16)
    dense = p.rate("level:hbm", 1e8)
    assert p.rate("level:hbm@quant.bnb-nf4", 1e8) == pytest.approx(0.95 * dense)
    assert p.rate("level:hbm@quant.marlin", 1e8) == pytest.approx(dense)
    # a family without its own compute curve defers to the unit's dense curve
    assert p.rate("unit:matrix.bf16@quant.marlin", 1e9) == pytest.approx(p.rate("unit:matrix.bf16", 1e9))


def test_the_fit_can_reach_a_family_key():
    # the same keys the calibration fit overrides: a slower marlin memory curve slows the step
    system = catalog.load("l4")
    g = build("llama-3.1-8b", "decode", batch=1, context=256, dtype="w4a16+marlin")
    _, _, table = graph_terms(g, system)
    keys = {k for t in table.terms for e in t.demands.values() for k in [e[0]]}
    assert "level:gddr6@quant.marlin" in keys
    base = Params(system)
    xs, rs = base.curve("level:gddr6@quant.marlin")
    slow = Params(system, {"level:gddr6@quant.marlin": (xs, rs / 2)})
    t0 = sum(c.time_s for c in graph_costs(g, system, params=base))
    t1 = sum(c.time_s for c in graph_costs(g, system, params=slow))
    assert t1 > 1.2 * t0  # weight streaming is most of a batch-1 decode step


def _gemv(n: int, k: int, rows: int) -> WorkloadGraph:
    g = WorkloadGraph(meta={"model": "toy", "phase": "decode", "batch": rows, "dtype": "bf16"})
    g.add(Op(0, "aten::mm", "gemv" if rows <= 16 else "matmul", "bf16", flops={"bf16": 2.0 * rows * n * k},
             reads=[Access("x", rows * k * 2, "activation"), Access("w:layers.0.mlp.up_proj.weight", n * k * 2,
                                                                   "weight")],
             writes=[Access("y", rows * n * 2, "output")], module="model.layers.0.mlp.up_proj",
             attrs={"m": rows, "n": n, "k": k, "batch": 1}))
    return g


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([2048, 4096, 8192, 14336]), k=st.sampled_from([2048, 4096, 8192]),
       rows=st.integers(1, 8), hw=st.sampled_from(["l4", "a100-80gb", "h100-sxm", "rtx-4090", "a10g"]),
       fam=st.sampled_from(["fused", "marlin", "exllama"]))
def test_fewer_weight_bits_never_slower_for_memory_bound_decode(n, k, rows, hw, fam):
    # decode reads its weights from device memory (cold: a step's weights never fit a cache);
    # ExLlama multiplies on CUDA cores and turns compute-bound past a row or two, so it is
    # memory-bound decode at one row only
    rows = 1 if fam == "exllama" else rows
    system = catalog.load(hw)
    times = []
    for spec in ("bf16", f"w8a16+{fam}", f"w4a16+{fam}"):
        p = parse(spec)
        g = quantize(_gemv(n, k, rows), p, choose(p))
        times.append(sum(op_cost(op, system, resident=frozenset()).time_s for op in g.ops))
    assert times[0] >= times[1] >= times[2]


def test_exllama_past_a_few_rows_is_slower_than_16_bit():
    # the other side of the property: CUDA-core math at 8 rows loses to tensor cores
    # (as the optimum benchmark's exllama rows at batch 8 show against fp16)
    system = catalog.load("a100-80gb")
    t = {}
    for spec in ("bf16", "w4a16+exllama"):
        p = parse(spec)
        g = quantize(_gemv(8192, 8192, 8), p, choose(p))
        t[spec] = sum(op_cost(op, system, resident=frozenset()).time_s for op in g.ops)
    assert t["w4a16+exllama"] > t["bf16"]


def test_fp8_needs_fp8_units():
    with pytest.raises(PrecisionError) as e:
        check(catalog.load("a100-80gb"), "fp8")
    msg = str(e.value)
    assert "fp8" in msg and "a100-80gb" in msg and "bf16, fp16, int8" in msg and "\n" not in msg
    for hw in ("h100-sxm", "h200", "l4", "l40s", "l40", "b200", "mi300x", "rtx-4090"):
        assert check(catalog.load(hw), "fp8") is not None
    # the library path refuses too: never priced on another unit
    with pytest.raises(PrecisionError):
        simulate(build("qwen2.5-0.5b", "decode", context=64, dtype="fp8"), "a10g")
    # fp8 weights with 16-bit activations only store fp8: any GPU runs them
    assert check(catalog.load("a100-80gb"), "wfp8a16") is not None


def test_fp8_gemm_runs_on_fp8_units():
    g = build("qwen2.5-0.5b", "decode", batch=4, context=64, dtype="fp8")
    units = {c.unit for op, c in zip(g.ops, graph_costs(g, catalog.load("h100-sxm")), strict=True)
             if op.attrs.get("quant_path") == "fused"}
    assert units == {"matrix.fp8"}


def test_dequantise_kernels_shard_with_their_weights():
    g = build("llama-3.1-8b", "decode", batch=4, context=256, dtype="w4a16+dequant-gemm", fusion="serving")
    one = simulate(g, "h100-sxm", launch="graph")
    two = simulate(g, "h100-sxm", launch="graph", tp=2)
    deq1 = one.to_pandas().query("quant_path == 'dequantize'")["bytes"].sum()
    deq2 = two.to_pandas().query("quant_path == 'dequantize'")["bytes"].sum()
    assert deq2 == pytest.approx(deq1 / 2, rel=1e-3)
    assert np.isclose(one.totals["bytes"], two.totals["bytes"], rtol=1e-2)


def test_family_data_carries_a_source_for_every_number():
    for name in ("fused", "marlin", "exllama", "bnb-nf4", "dequant-gemm", "fp8-gemm", "int8-gemm"):
        f = family(name)
        for field, value in f:
            if hasattr(value, "source"):
                assert value.source.strip(), (name, field)


def test_quantised_weights_are_not_multiplied_in_pim_banks():
    from simulator.placement import Placement

    system = catalog.load("lpddr5x-pim")
    pl = Placement(weights="pim")
    bf = build("qwen2.5-0.5b", "decode", batch=1, context=64, dtype="bf16")
    q4 = build("qwen2.5-0.5b", "decode", batch=1, context=64, dtype="w4a16")
    assert any(c.unit == "pim" for c in graph_costs(bf, system, pl))
    units = {c.unit for op, c in zip(q4.ops, graph_costs(q4, system, pl), strict=True) if op.attrs.get("quant")}
    assert "pim" not in units and units  # the int4 kernel runs on the device, its weights cross the link
