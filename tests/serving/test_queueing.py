"""Queueing sanity of the serving simulation (issue 14): Little's law, M/D/1, saturation,
and the orderings every serving engine shows (continuous > static batching, chunked
prefill trades TTFT for TPOT, disaggregation removes prefill interference)."""

from __future__ import annotations

import numpy as np
import pytest
from serving_fakes import ConstantStepModel, FakeStepModel

from simulator.serving import SchedulerConfig, ServeConfig, SpecConfig, serve
from simulator.serving.traffic import Arrivals, Lengths, generate, parse_lengths


def run(model, qps, n, *, scheduler="continuous", prompt=512, output=64, seed=1, arrival="poisson", **kw):
    sched = kw.pop("sched", SchedulerConfig())
    cfg = ServeConfig(model="fake", hardware="fake", scheduler=scheduler, sched=sched, seed=seed, **kw)
    a, p, o = generate(Arrivals(arrival, qps), Lengths("fixed", prompt), Lengths("fixed", output), n=n, seed=seed)
    return serve(cfg, a, p, o, step_model=model)


def test_littles_law_within_2_percent():
    res = run(FakeStepModel(), qps=8.0, n=6000, prompt=300, output=100)
    df = res.requests
    t0, t1 = 60.0, float(df["arrival_s"].max()) - 60.0
    inside = df[(df["arrival_s"] >= t0) & (df["arrival_s"] < t1)]
    lam = len(inside) / (t1 - t0)
    w = float(inside["e2e_s"].mean())
    n_sys = res.in_system(t0, t1)
    assert n_sys > 5  # a loaded system, not an empty one
    assert abs(n_sys / (lam * w) - 1) < 0.02, (n_sys, lam * w)


def test_batch_one_server_matches_md1_waiting_time():
    s = 0.05  # two steps of 50 ms: prefill, then one decode
    rho = 0.6
    lam = rho / (2 * s)
    res = run(ConstantStepModel(s), qps=lam, n=60000, scheduler="static", output=2,
              sched=SchedulerConfig(max_num_seqs=1))
    service = 2 * s
    wq = rho * service / (2 * (1 - rho))  # Pollaczek-Khinchine, deterministic service
    measured = float(res.requests["queue_s"].mean())
    assert abs(measured / wq - 1) < 0.03, (measured, wq)
    assert np.allclose(res.requests["e2e_s"] - res.requests["queue_s"], service)


def _chat(model, qps, n, scheduler="continuous", sched=None, seed=1, arrival="poisson"):
    """Variable lengths (lognormal prompts around 400 tokens, outputs around 100)."""
    cfg = ServeConfig(model="fake", hardware="fake", scheduler=scheduler, sched=sched or SchedulerConfig(),
                      seed=seed)
    a, p, o = generate(Arrivals(arrival, qps), parse_lengths("lognormal:400:0.6"),
                       parse_lengths("lognormal:100:0.8"), n=n, seed=seed)
    return a, serve(cfg, a, p, o, step_model=model).summary()


def test_throughput_saturates_and_ttft_diverges():
    model = FakeStepModel(base=0.01, per_token=2e-5)
    sched = SchedulerConfig(max_num_seqs=32)
    # the offline maximum: every request queued at time 0
    _, off = _chat(model, 1e6, 2000, sched=sched, arrival="constant")
    cap = off["throughput_rps"]
    rows = {}
    for f in (0.5, 0.8, 0.95, 1.3):
        a, s = _chat(model, f * cap, 4000, sched=sched)
        lam = len(a) / (a[-1] - a[0])  # the sample's own rate
        rows[f] = s
        # served as fast as requests come, up to the offline maximum
        assert abs(s["throughput_rps"] / min(lam, cap) - 1) < 0.03, (f, s["throughput_rps"], lam, cap)
    ttft = [rows[f]["p99_ttft_ms"] for f in (0.5, 0.8, 0.95, 1.3)]
    assert ttft == sorted(ttft)
    assert ttft[2] > 10 * ttft[0]  # near capacity the queue builds up
    assert ttft[3] > 10 * ttft[2]  # past it, it grows without bound


def test_continuous_batching_beats_static_at_equal_load():
    model = FakeStepModel(base=0.01, per_token=2e-5)
    sched = SchedulerConfig(max_num_seqs=16)
    for qps in (2.0, 5.0):
        _, st = _chat(model, qps, 1500, "static", sched)
        _, co = _chat(model, qps, 1500, "continuous", sched)
        assert co["mean_e2e_ms"] < 0.2 * st["mean_e2e_ms"], qps
        assert co["p99_ttft_ms"] < 0.2 * st["p99_ttft_ms"], qps
    assert co["throughput_rps"] > 1.5 * st["throughput_rps"]  # at 5 req/s static is past its capacity


def test_chunked_prefill_lowers_p99_tpot_at_some_cost_in_ttft():
    model = FakeStepModel(base=0.01, per_token=2e-5)
    kw = dict(qps=4.0, n=2000, prompt=2048, output=128)
    co = run(model, scheduler="continuous", sched=SchedulerConfig(max_num_batched_tokens=8192), **kw).summary()
    ch = run(model, scheduler="chunked", sched=SchedulerConfig(chunk_size=256), **kw).summary()
    assert ch["p99_tpot_ms"] < 0.8 * co["p99_tpot_ms"]
    assert ch["p50_ttft_ms"] > co["p50_ttft_ms"]


def test_disaggregation_removes_prefill_interference_from_tpot():
    model = FakeStepModel(base=0.01, per_token=2e-5)
    kw = dict(qps=4.0, n=1500, prompt=2048, output=128)
    colo = run(model, replicas=2, router="least_outstanding", **kw).summary()
    dis = run(model, disaggregate=(1, 1), **kw)
    s = dis.summary()
    assert s["p99_tpot_ms"] < 0.7 * colo["p99_tpot_ms"]
    # a decode replica only ever runs decode steps: its TPOT is its decode step time
    steps = dis.steps[dis.steps["replica"] == 1]
    assert set(steps["kind"]) == {"decode"}
    assert s["p99_tpot_ms"] <= steps["duration_s"].max() * 1e3 + 1e-9


def test_speculative_decoding_yields_the_expected_tokens_per_verify_step():
    k, alpha = 3, 0.6
    model = FakeStepModel()
    cfg = ServeConfig(model="fake", hardware="fake", spec=SpecConfig("fake-draft", k, alpha), seed=3)
    a, p, o = generate(Arrivals("poisson", 2.0), Lengths("fixed", 64), Lengths("fixed", 400), n=300, seed=3)
    res = serve(cfg, a, p, o, step_model=model, draft_model=FakeStepModel(base=0.002, per_token=1e-6, draft=True))
    st = res.steps[res.steps["kind"] == "decode"]
    # tokens produced by decode steps / sequence-steps = mean tokens per verify, truncation aside
    produced = float((res.requests["output_tokens"] - 1).sum())
    per = produced / float(st["decode_seqs"].sum())
    expect = (1 - alpha ** (k + 1)) / (1 - alpha)
    assert per == pytest.approx(expect, rel=0.03)
    assert SpecConfig("d", k, alpha).expected_tokens == pytest.approx(expect)


def test_same_seed_same_result_and_seed_matters():
    a = run(FakeStepModel(), qps=5.0, n=300, seed=7).requests
    b = run(FakeStepModel(), qps=5.0, n=300, seed=7).requests
    c = run(FakeStepModel(), qps=5.0, n=300, seed=8).requests
    assert a.equals(b)
    assert not a["arrival_s"].equals(c["arrival_s"])


def test_kv_pressure_preempts_and_everything_still_finishes():
    model = FakeStepModel(kv_tokens=6000)
    for mode in ("recompute", "swap"):
        res = run(model, qps=20.0, n=400, prompt=200, output=300,
                  sched=SchedulerConfig(preemption=mode, max_num_seqs=64))
        s = res.summary()
        assert s["preemptions"] > 0
        assert s["peak_kv_use"] > 0.9
        assert (res.requests["finish_s"] >= res.requests["first_token_s"]).all()
        assert (res.steps["kv_used_blocks"] <= res.steps["kv_total_blocks"]).all()


def test_round_robin_and_least_outstanding_spread_the_load():
    for router in ("round_robin", "least_outstanding"):
        res = run(FakeStepModel(), qps=10.0, n=600, replicas=3, router=router)
        counts = res.requests["replica"].value_counts()
        assert len(counts) == 3 and counts.min() > 150


def test_an_engine_step_overhead_lengthens_every_step_by_itself():
    # the same traffic with a fixed 50 ms step: every step takes 2 ms more, so a batch-one
    # request's service time grows by 2 ms per step (one prefill, one decode)
    base = run(ConstantStepModel(0.05), qps=2.0, n=200, scheduler="static", output=2,
               sched=SchedulerConfig(max_num_seqs=1))
    more = run(ConstantStepModel(0.05), qps=2.0, n=200, scheduler="static", output=2,
               sched=SchedulerConfig(max_num_seqs=1), step_overhead_s=0.002)
    assert np.allclose(more.steps["duration_s"], 0.052)
    assert np.allclose(more.requests["e2e_s"] - more.requests["queue_s"], 0.104)
    assert more.requests["e2e_s"].mean() > base.requests["e2e_s"].mean()


@pytest.mark.parametrize("bad", [-1e-3, 1.5, float("nan"), "1ms"])
def test_a_bad_step_overhead_is_a_one_line_error(bad):
    from simulator.serving.cluster import ServeError

    with pytest.raises(ServeError, match="--step-overhead must be a time in 0..1 s"):
        ServeConfig(model="fake", hardware="fake", step_overhead_s=bad).check()
