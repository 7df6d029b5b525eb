"""The capacity planner: feasibility, SLO search, what-if direction, parallel runs, CLI."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models import catalog
from roofsim.cli import main
from roofsim.planner import api, best, plan
from roofsim.planner import evaluate as ev
from workloads.graph import WorkloadGraph

L70 = dict(num_layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128, intermediate=28672, vocab=128256)


def llama_params(c: dict) -> int:
    h, kvd = c["hidden"], c["kv_heads"] * c["head_dim"]
    per_layer = 2 * h * c["heads"] * c["head_dim"] + 2 * h * kvd + 3 * h * c["intermediate"] + 2 * h
    return c["num_layers"] * per_layer + 2 * c["vocab"] * h + h


# -- fakes: fast stand-ins for workloads.build and simulate (top-level: they pickle) ----


def fake_build(model, *, phase, batch, context, prompt, dtype, fusion="none"):
    cfg = (
        {**L70, "params": llama_params(L70)}
        if model == "big"
        else {
            "num_layers": 4,
            "kv_heads": 2,
            "head_dim": 64,
            "params": 1e8,
        }
    )
    return WorkloadGraph(
        {
            "model": model,
            "phase": phase,
            "batch": batch,
            "context": context,
            "prompt": prompt,
            "dtype": dtype,
            "config": cfg,
        }
    )


def fake_simulate(graph, system, *, launch, tp, placement):
    """A roofline-like step time: weights+KV over bandwidth, FLOPs over peak, plus dispatch."""
    m = graph.meta
    cfg = m["config"]
    tokens = m["batch"] * (m["prompt"] if m["phase"] == "prefill" else 1)
    kv = 2 * cfg["num_layers"] * cfg["kv_heads"] * cfg["head_dim"] * 2 * m["batch"] * (m["context"] + 1)
    mem = (cfg["params"] * 2 + kv) / tp / system.device.main_memory.bandwidth.value
    comp = 2 * cfg["params"] * tokens / tp / system.device.matrix["bf16"].peak.value
    host = 100 * system.host.dispatch_overhead.value
    return {"step_time_s": max(mem, comp) + host, "bottleneck": "memory" if mem > comp else "compute"}


FAKE = dict(build_fn=fake_build, simulate_fn=fake_simulate, progress=False)


# -- feasibility ----------------------------------------------------------------------


def test_llama70b_feasibility_hand_computed():
    df = plan("big", "h100-sxm", tp=[1, 2, 4, 8, 16], batch=[1, 64], context=[8192], **FAKE)
    cap = catalog.load("h100-sxm").device.main_memory.capacity.value
    for r in df.to_dict(orient="records"):
        tp, b = r["tp"], r["batch"]
        w = llama_params(L70) * 2 / tp
        kv = 2 * 80 * math.ceil(8 / tp) * 128 * (8192 + 1) * b * 2
        expect = tp <= 8 and w + kv <= cap
        assert r["fits"] == expect, r
        assert r["device_needed_gib"] == pytest.approx(
            max(w + kv, w + 2 * 80 * math.ceil(8 / tp) * 128 * 512 * b * 2) / 2**30, rel=1e-9
        )
        if not expect:
            assert r["reason"] and math.isnan(r["tpot_ms"]) and not r["meets_slo"]
        else:
            assert r["reason"] == "" and r["tpot_ms"] > 0
    # 141 GB of bf16 weights: TP 1 never fits on 80 GB, TP 2 does at batch 1
    assert not df.query("tp == 1")["fits"].any()
    assert df.query("tp == 2 and batch == 1")["fits"].all()
    assert "exceeds the 8 device" in df.query("tp == 16")["reason"].iloc[0]


def test_rows_never_dropped_and_sorted():
    df = plan(["small", "big"], ["l4", "h100-sxm"], tp=[8, 1], batch=[32, 1], context=[4096, 1024], **FAKE)
    assert len(df) == 2 * 2 * 2 * 2 * 2
    assert list(df[api.SORT].itertuples(index=False)) == sorted(df[api.SORT].itertuples(index=False))


def test_throughput_and_cost_definitions():
    df = plan(
        "small", "h100-sxm", tp=[2], batch=[8], context=[1024], price_per_hour={"h100-sxm": 3.6}, **FAKE
    )
    r = df.iloc[0]
    assert r["tokens_per_s"] == pytest.approx(8 / (r["tpot_ms"] / 1e3))
    assert r["tokens_per_s_per_device"] == pytest.approx(r["tokens_per_s"] / 2)
    assert r["tokens_per_s_per_system"] == pytest.approx(r["tokens_per_s"] * 4)  # 8 devices / tp 2
    assert r["cost_per_mtok"] == pytest.approx(3.6 / 3600 / r["tokens_per_s_per_device"] * 1e6)


# -- SLO search -----------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(slo=st.floats(5, 400), context=st.sampled_from([1024, 8192, 32768]), tp=st.sampled_from([2, 4, 8]))
def test_max_batch_is_largest(slo, context, tp):
    s = api.settings(["h100-sxm"], slo_tpot_ms=slo, build_fn=fake_build, simulate_fn=fake_simulate)
    r = ev.search_max_batch(s, "big", "h100-sxm", tp, context, limit=512)
    b = r["batch"]
    nxt = ev.evaluate(s, "big", "h100-sxm", tp, b + 1, context)
    if r["meets_slo"]:
        assert b >= 512 or not nxt["meets_slo"]
        if b > 1:
            assert all(ev.evaluate(s, "big", "h100-sxm", tp, k, context)["meets_slo"] for k in (1, b // 2, b))
    else:
        assert b == 1


def test_max_batch_real_engine():
    df = plan(
        "gpt2", "l4", tp=[1], max_batch=True, batch_limit=256, context=[512], slo_tpot_ms=4, progress=False
    )
    r = df.iloc[0]
    s = api.settings(["l4"], slo_tpot_ms=4)
    b = int(r["batch"])
    assert r["meets_slo"] and r["tpot_ms"] <= 4 and 1 < b < 256
    assert not ev.evaluate(s, "gpt2", "l4", 1, b + 1, 512)["meets_slo"]
    # the search looked at far fewer batches than a linear scan would
    assert r["max_batch_searched"] < b


def test_best_per_hardware_meets_slo():
    df = plan(
        "small", ["h100-sxm", "l4"], tp=[1, 2], batch=[1, 16, 64], context=[1024], slo_tpot_ms=5, **FAKE
    )
    top = best(df)
    assert set(top["hardware"]) == {"h100-sxm", "l4"}
    for r in top.to_dict(orient="records"):
        ok = df[(df.hardware == r["hardware"]) & df.meets_slo]
        if r["meets_slo"]:
            assert r["tokens_per_s_per_device"] == ok["tokens_per_s_per_device"].max()
        else:
            assert ok.empty and r["reason"]


# -- what-if --------------------------------------------------------------------------


def _tpot(**kw):
    df = plan(
        "qwen2.5-0.5b", "h100-sxm", tp=[1], batch=[64], context=[4096], launch="graph", progress=False, **kw
    )
    return df.iloc[0]


def test_more_bandwidth_lowers_tpot_real_engine():
    base = _tpot()
    assert _tpot(scale="bandwidth=2")["tpot_ms"] < base["tpot_ms"]
    assert _tpot(set_overrides=["h100-sxm.hbm.bandwidth=6.7TB/s"])["tpot_ms"] < base["tpot_ms"]
    assert _tpot(set_overrides=["h100-sxm.hbm.bandwidth=1TB/s"])["tpot_ms"] > base["tpot_ms"]
    assert _tpot(scale={"compute": 2})["ttft_ms"] < base["ttft_ms"]


def test_set_capacity_changes_feasibility_and_records_source():
    kw = dict(tp=[1], batch=[1], context=[2048], **FAKE)
    assert not plan("big", "h100-sxm", **kw)["fits"].iloc[0]
    df = plan("big", "h100-sxm", set_overrides=["h100-sxm.hbm.capacity=192GB"], **kw)
    assert df["fits"].iloc[0]
    assert df.attrs["sources"]["h100-sxm"] == ["what-if: --set h100-sxm.hbm.capacity=192GB"]


def test_scale_dispatch_and_fake_direction():
    slow = plan("small", "h100-sxm", tp=[1], batch=[1], context=[1024], scale="dispatch=2", **FAKE)
    base = plan("small", "h100-sxm", tp=[1], batch=[1], context=[1024], **FAKE)
    assert slow["tpot_ms"].iloc[0] > base["tpot_ms"].iloc[0]


def test_sensitivity_ranks_bandwidth_for_memory_bound_decode():
    from roofsim.planner import sensitivity

    s = api.settings(["h100-sxm"], build_fn=fake_build, simulate_fn=fake_simulate)
    t = sensitivity(s, "big", "h100-sxm", 4, 8, 8192)
    assert list(t["swing_pct"]) == sorted(t["swing_pct"], reverse=True)
    hbm = t.set_index("param").loc["hbm.bandwidth"]
    assert hbm["tpot_plus_pct"] < 0 < hbm["tpot_minus_pct"]
    tpot_swing = (t["tpot_minus_pct"] - t["tpot_plus_pct"]).abs()
    ttft_swing = (t["ttft_minus_pct"] - t["ttft_plus_pct"]).abs()
    assert t["param"][tpot_swing.idxmax()] == "hbm.bandwidth"  # decode reads weights
    assert t["param"][ttft_swing.idxmax()] == "device.matrix.bf16.peak"  # prefill is compute-bound
    assert set(t["param"][:2]) == {"hbm.bandwidth", "device.matrix.bf16.peak"}


# -- local, workers and Dask agree -----------------------------------------------------

REAL = dict(tp=[1, 2], batch=[1, 4], context=[128, 256], slo_tpot_ms=10, progress=False)


def test_local_workers_dask_identical():
    local = plan("gpt2", ["h100-sxm", "l4"], **REAL)
    ev.clear_caches()
    par = plan("gpt2", ["h100-sxm", "l4"], workers=2, **REAL)
    pd.testing.assert_frame_equal(local, par)

    from distributed import Client, LocalCluster

    with LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        ev.clear_caches()
        via_addr = plan("gpt2", ["h100-sxm", "l4"], dask=cluster.scheduler_address, **REAL)
        with Client(cluster) as client:
            via_client = plan("gpt2", ["h100-sxm", "l4"], dask=client, **REAL)
    pd.testing.assert_frame_equal(local, via_addr)
    pd.testing.assert_frame_equal(local, via_client)


# -- CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--slo-tpot-ms", "0"], "--slo-tpot-ms must be > 0"),
        (["--slo-ttft-ms", "-5"], "--slo-ttft-ms must be > 0"),
        (
            ["--set", "h100-sxm.hbm.bandwith=4TB/s"],
            "unknown field 'bandwith'; allowed: name, capacity, bandwidth",
        ),
        (["--set", "h100-sxm.hbm.bandwidth=4GHz"], "not a bandwidth unit"),
        (["--set", "a100-80gb.hbm.bandwidth=4TB/s"], "not a hardware of this run"),
        (["--price-per-hour", "a100-80gb=2"], "'a100-80gb' is not a hardware of this run"),
        (["--scale", "bandwith=2"], "unknown key 'bandwith'; allowed: bandwidth, compute, dispatch, latency"),
        (["--scale", "bandwidth=0"], "positive"),
        (["--kv-tier", "cxl"], "no such tier"),
        (["--hardware", "a100-80gb", "--precision", "fp8"], "which a100-80gb does not have"),
        (["--quant-kernel", "qqq"], "--quant-kernel 'qqq' unknown; known: fused"),
    ],
)
def test_cli_bad_input_one_line_exit_2(capsys, args, needle):
    rc = main(["plan", "gpt2", "--hardware", "h100-sxm", "--tp", "1", "--batch", "1", "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_json_and_csv(tmp_path, capsys):
    out = tmp_path / "plan.json"
    rc = main(
        [
            "plan",
            "gpt2",
            "--hardware",
            "h100-sxm,l4",
            "--tp",
            "1,16",
            "--batch",
            "1",
            "--context",
            "256",
            "--slo-tpot-ms",
            "50",
            "--price-per-hour",
            "h100-sxm=2.5",
            "--format",
            "json",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert len(doc["configurations"]) == 4
    infeasible = [c for c in doc["configurations"] if not c["fits"]]
    assert len(infeasible) == 2 and all("exceeds" in c["reason"] for c in infeasible)
    assert {b["hardware"] for b in doc["best"]} == {"h100-sxm", "l4"}
    assert (
        main(
            [
                "plan",
                "gpt2",
                "--hardware",
                "l4",
                "--tp",
                "1",
                "--batch",
                "1,2",
                "--context",
                "256,4096",
                "--format",
                "csv",
                "--no-progress",
            ]
        )
        == 0
    )
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(df.columns[:5]) == ["model", "hardware", "tp", "batch", "context"] and len(df) == 4
    # gpt2 allows 1024 positions: the long context is listed as infeasible, with the reason
    assert list(df["fits"]) == [True, False, True, False]
    assert df["reason"].iloc[1].startswith("decode needs")


def test_cli_unknown_model_is_one_line(capsys):
    assert main(["plan", "no-such-model", "--hardware", "l4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roofsim: error:") and err.count("\n") == 1


def test_cli_table_with_sensitivity(capsys):
    rc = main(
        [
            "plan",
            "gpt2",
            "--hardware",
            "h100-sxm",
            "--tp",
            "1",
            "--batch",
            "1",
            "--context",
            "256",
            "--sensitivity",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "best per hardware" in out and "sensitivity" in out and "hbm.bandwidth" in out


def test_each_row_says_how_much_of_it_rests_on_measured_numbers():
    df = plan("gpt2", ["l4", "h100-sxm-cal"], tp=[1], batch=[1], context=[256], launch="graph", progress=False)
    share = df.set_index("hardware")["measured_share"]
    assert share["h100-sxm-cal"] > 0.9 > share["l4"] >= 0.0
