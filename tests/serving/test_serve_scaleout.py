"""``roofsim serve --pp --ep`` (issue 16): engines of a pipeline or an expert-parallel group."""

from __future__ import annotations

import pytest

from roofsim.cli import main
from simulator import simulate
from simulator.layout import link_time
from simulator.scaleout import default_imbalance
from simulator.serving.scaled import ScaledStepModel, engines
from simulator.stepmodel import StepModel
from workloads import build
from workloads.expert_parallel import expert_shard


def test_a_pipeline_engine_is_the_whole_model_plus_the_sends():
    base = StepModel("llama-3.1-8b", "h100-sxm", tp=2, cache_dir=False)
    pp = ScaledStepModel("llama-3.1-8b", "h100-sxm", tp=2, pp=2)
    send = link_time("interconnect", 16 * 4096 * 2, pp.system)
    assert pp.decode_time(16, 1000) == pytest.approx(base.decode_time(16, 1000) + send, rel=1e-12)
    assert pp.step([(512, 0)], 8, 700) == pytest.approx(base.step([(512, 0)], 8, 700) + link_time(
        "interconnect", 520 * 4096 * 2, pp.system), rel=1e-12)
    # each device holds half the layers' weights; an engine's KV per token is the whole model's
    m, mb = pp.memory(), base.memory()
    assert m.weights == pytest.approx(mb.weights / 2) and m.kv_per_token == mb.kv_per_token
    assert engines(3, 2, 1) == 6


def test_an_expert_parallel_engine_runs_its_share_of_experts():
    ep = ScaledStepModel("mixtral-8x7b", "h100-sxm", ep=4)
    base = StepModel("mixtral-8x7b", "h100-sxm", cache_dir=False)
    # the step model's decomposition against the expert-sharded full graph, simulated directly
    g = build("mixtral-8x7b", phase="decode", batch=8, context=512, fusion="serving")
    direct = simulate(expert_shard(g, 4, default_imbalance()), "h100-sxm", launch="graph").step_time_s
    assert ep.decode_time(8, 512) == pytest.approx(direct, rel=0.03)
    assert ep.decode_time(8, 512) != pytest.approx(base.decode_time(8, 512), rel=0.01)
    # weights: everything but the routed experts, and a quarter of those
    w, wb = ep.memory().weights, base.memory().weights
    experts = ep._expert_bytes()
    assert experts == pytest.approx(32 * 8 * 3 * 4096 * 14336 * 2, rel=1e-9)
    assert w == pytest.approx(wb - experts * 3 / 4, rel=1e-9)


def test_serve_cli_runs_a_pipeline(capsys):
    rc = main(["serve", "llama-3.1-8b", "--hardware", "h100-sxm", "--tp", "2", "--pp", "2", "--qps", "4",
               "--requests", "40"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "2 engines (one per pipeline stage and EP rank)" in out


@pytest.mark.parametrize("argv,needle", [
    (["--pp", "0"], "--pp must be a whole number >= 1"),
    (["--pp", "2", "--disaggregate", "1:1"], "take neither --disaggregate"),
    (["--ep", "2"], "has no mixture-of-experts layers"),
    (["--pp", "99"], "--pp 99 exceeds the 32 layers"),
    (["--step-overhead", "5"], "--step-overhead: unit"),
    (["--step-overhead", "2s"], "--step-overhead must be a time in 0..1 s"),
])
def test_serve_scaleout_errors_are_one_line(capsys, argv, needle):
    rc = main(["serve", "llama-3.1-8b", "--hardware", "h100-sxm", "--qps", "1", "--requests", "5", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
