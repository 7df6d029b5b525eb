"""An engine's per-step CPU time, fitted to the published training cases (``validation.engine_fit``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from validation.case_fit import MIN_TRAIN
from validation.engine_fit import engine_cases, errors, fit_engine, main
from validation.published import engine_steps, predict_case


def _row(engine: str) -> pd.Series:
    return pd.Series({"case_id": "x", "split": "heldout", "hardware": "a100-80gb", "engine": engine,
                      "mode": "cuda-graph", "model": "meta-llama/Llama-2-7b-hf", "precision": "fp16", "tp": 1,
                      "pp": math.nan, "batch": 4, "prompt_tokens": 128, "output_tokens": 64,
                      "metric": "e2e_latency_s", "value": 1.0, "unit": "s"})


def test_every_step_of_an_engine_pays_its_listed_cpu_time():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = predict_case(_row("vllm"), engines={}).value
        more = predict_case(_row("vllm"), engines={"vllm": 1e-3}).value
        other = predict_case(_row("tensorrt-llm"), engines={"vllm": 1e-3}).value
    # one prefill and 64 decodes, each 1 ms later; an engine not listed pays nothing
    assert more - base == pytest.approx(65e-3, rel=1e-9)
    assert other == pytest.approx(base, rel=1e-12)


def test_the_committed_vllm_step_is_where_its_training_cases_want_it():
    committed = engine_steps()["vllm"]
    cases = engine_cases("vllm")
    train = cases[cases["split"] == "train"]
    assert len(train) >= MIN_TRAIN and set(cases["split"]) == {"train", "heldout"}

    def loss(seconds: float) -> float:
        e = errors(train, "vllm", seconds)["error"].to_numpy(float)
        return float(np.median(np.abs(np.log1p(e))))

    at = loss(committed)
    assert at < loss(committed * 0.8) and at < loss(committed * 1.2) and at < loss(0.0)
    # and the fit, run again, lands on it
    assert fit_engine("vllm")["fitted_s"] == pytest.approx(committed, rel=0.02)


def test_an_engine_with_too_few_training_cases_is_refused(capsys):
    assert main(["--engine", "no-such-engine"]) == 2
    assert "need 3" in capsys.readouterr().err
