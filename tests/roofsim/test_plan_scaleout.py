"""``roofsim plan --pp --ep --nodes`` (issue 16): layouts beyond TP alone are searched
with the scale-out simulation; layouts that cannot run are rows that say why."""

from __future__ import annotations

import json

import pytest

from roofsim.cli import main
from roofsim.planner.scaled import microbatches, plan_scaled
from simulator.scaleout import simulate_scaled
from workloads import build


def test_microbatches_cut_the_batch_evenly():
    assert microbatches(8, 2, 1) == 2
    assert microbatches(6, 4, 1) == 3
    assert microbatches(1, 4, 1) == 1
    assert microbatches(8, 2, 4) == 2
    assert microbatches(6, 2, 4) is None


def test_a_pipeline_row_is_the_scaled_simulation():
    df = plan_scaled(["llama-3.1-8b"], ["h100-sxm"], tp=[2], pp=[2], ep=[1], nodes=None, batch=[8], context=[512],
                     prompt=128, dtype="bf16", launch="graph", fusion="none")
    r = df.iloc[0]
    assert r["fits"] and r["devices"] == 4 and r["nodes"] == 1
    dec = simulate_scaled(build("llama-3.1-8b", phase="decode", batch=4, context=512), "h100-sxm", tp=2, pp=2,
                          microbatches=2, launch="graph")
    assert r["tpot_ms"] == pytest.approx(dec.totals["steady_step_s"] * 1e3, rel=1e-9)
    assert r["tokens_per_s_per_device"] == pytest.approx(8 / dec.totals["steady_step_s"] / 4, rel=1e-9)


def test_layouts_that_cannot_run_are_rows_with_a_reason():
    df = plan_scaled(["llama-3.1-8b", "mixtral-8x7b"], ["h100-sxm"], tp=[1], pp=[1], ep=[2], nodes=None, batch=[3, 4],
                     context=[256], prompt=64, dtype="bf16", launch="graph", fusion="none")
    by = {(r["model"], r["batch"]): r for r in df.to_dict(orient="records")}
    assert "no mixture-of-experts" in by[("llama-3.1-8b", 4)]["reason"]
    assert "not a multiple of ep 2" in by[("mixtral-8x7b", 3)]["reason"]
    assert by[("mixtral-8x7b", 4)]["fits"]


def test_plan_cli_searches_pp_next_to_tp(capsys):
    rc = main(["plan", "llama-3.1-8b", "--hardware", "h100-sxm", "--tp", "2", "--pp", "1,2", "--batch", "8",
               "--context", "512", "--format", "json", "--no-progress"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    layouts = {(c["tp"], c["pp"]) for c in doc["configurations"]}
    assert layouts == {(2, 1), (2, 2)}
    assert all(c["tokens_per_s_per_device"] > 0 for c in doc["configurations"])


@pytest.mark.parametrize("argv,needle", [
    (["--pp", "0"], "--pp values must be positive"),
    (["--pp", "2", "--max-batch"], "--max-batch does not search --pp/--ep"),
    (["--nodes", "2"], "--nodes needs --pp or --ep"),
])
def test_plan_scaleout_errors_are_one_line(capsys, argv, needle):
    rc = main(["plan", "gpt2", "--hardware", "h100-sxm", "--tp", "1", "--context", "64", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
