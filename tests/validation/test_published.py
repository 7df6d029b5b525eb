"""The published end-to-end set and its predictions (validation/published.py)."""

from __future__ import annotations

import hashlib
import math
import warnings

import pandas as pd
import pytest

from validation.published import MODES, load_cases, mode_of, predict_case, summary


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return load_cases()


def test_the_set_covers_what_the_issue_asks(cases):
    assert len(cases) >= 30 and cases["case_id"].is_unique
    floats = cases[cases["precision"].isin(["fp16", "bf16"])]
    assert {"a100-80gb", "a10g"} <= set(floats["hardware"]) and floats["hardware"].str.startswith("h100").any()
    assert {1, 2, 4, 8} <= set(floats["tp"].dropna().astype(int))
    assert (cases["quote"].str.len() > 0).all() and (cases["source"].str.len() > 0).all()


def test_held_out_third_is_the_documented_hash_rule(cases):
    for cid, split in zip(cases["case_id"], cases["split"], strict=True):
        held = int(hashlib.sha256(cid.encode()).hexdigest(), 16) % 3 == 0
        assert split == ("heldout" if held else "train"), cid


def test_every_engine_has_a_mode(cases):
    for engine, mode in zip(cases["engine"], cases["mode"], strict=True):
        assert mode_of(engine, mode) is not None, (engine, mode)
    assert all(f in ("none", "compile", "serving") and launch in ("eager", "graph") for f, launch in MODES.values())


def _row(**kw):
    base = {"case_id": "x", "split": "heldout", "hardware": "a100-80gb", "engine": "tensorrt-llm", "mode": "cuda-graph",
            "model": "meta-llama/Llama-2-7b-hf", "precision": "fp16", "tp": 1, "pp": math.nan, "batch": 4,
            "prompt_tokens": 128, "output_tokens": 64, "metric": "output_tokens_per_s", "value": 1.0, "unit": "tokens/s"}
    return pd.Series({**base, **kw})


def test_a_throughput_figure_is_prefill_plus_decodes():
    from simulator import simulate
    from workloads import build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = predict_case(_row())
        pre = simulate(build("llama-2-7b", phase="prefill", batch=4, prompt=128, context=128, dtype="fp16", fusion="serving"),
                       "a100-80gb-cal",
                       launch="graph").step_time_s
        dec = simulate(build("llama-2-7b", phase="decode", batch=4, context=128 + 32, dtype="fp16", fusion="serving"),
                       "a100-80gb-cal", launch="graph").step_time_s
    assert p.value == pytest.approx(4 * 64 / (pre + 64 * dec), rel=1e-9)
    assert "prefill(B=4, P=128)" in p.steps


def test_cases_roofsim_cannot_model_yet_say_why():
    assert "issue 15" in predict_case(_row(precision="w4a16")).note
    assert "no fixed batch" in predict_case(_row(batch=math.nan)).note
    assert "issue 16" in predict_case(_row(pp=2)).note
    assert "not in the zoo" in predict_case(_row(model="EleutherAI/gpt-j-6b")).note


def test_summary_counts_splits_and_modes():
    pred = pd.DataFrame({"split": ["heldout", "heldout", "train", "heldout"], "mode": ["a", "b", "a", "a"],
                         "error": [0.05, -0.2, 0.01, math.nan]})
    s = summary(pred)
    assert s["heldout"]["n"] == 2 and s["heldout"]["within_10pct"] == 0.5 and s["not_predicted"] == 1
    assert s["by_mode"]["a"]["median_abs_error"] == pytest.approx(0.05)
