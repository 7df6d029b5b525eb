"""Fit a serving engine's CPU time per step to the training split of the published figures.

Between two steps a serving engine's Python side schedules the next batch, prepares its
inputs, samples and processes the outputs; unless it overlaps that work with the GPU,
every step pays it on top of its kernels, and no kernel benchmark sees it. The published
set holds whole-generation figures of such engines (``validation/data/published/
cases.csv``). This module finds the one per-step value that makes an engine's training
cases right (the minimum of the median |log error| over them, by a bounded scalar search,
on the calibrated systems) and reports every case of the engine before and after;
nothing is written. The value goes into ``validation/data/published/engines.yaml`` by
hand, with the command and the cases named in its ``source``.

``python -m validation.engine_fit --engine vllm``
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from .published import engine_steps, load_cases, predict_all

#: fewer training cases than this and an engine is not fitted
MIN_TRAIN = 3


def engine_cases(engine: str) -> pd.DataFrame:
    """The published cases of ``engine`` that roofsim predicts (both splits)."""
    cases = load_cases()
    mine = cases[cases["engine"] == engine]
    if mine.empty:
        return mine.reset_index(drop=True)
    pred = predict_all(mine)
    return mine[np.isfinite(pred["error"].to_numpy(float))].reset_index(drop=True)


def errors(cases: pd.DataFrame, engine: str, seconds: float) -> pd.DataFrame:
    return predict_all(cases, engines={**engine_steps(), engine: seconds})


def fit_engine(engine: str, lo: float = 1e-5, hi: float = 2e-2) -> dict:
    cases = engine_cases(engine)
    train = cases[cases["split"] == "train"]
    if len(train) < MIN_TRAIN:
        raise ValueError(f"{engine}: only {len(train)} training cases roofsim predicts; need {MIN_TRAIN}")

    def loss(log_s: float) -> float:
        e = errors(train, engine, math.exp(log_s))["error"].to_numpy(float)
        return float(np.median(np.abs(np.log1p(e))))

    res = minimize_scalar(loss, bounds=(math.log(lo), math.log(hi)), method="bounded", options={"xatol": 0.01})
    best = math.exp(res.x)
    before, after = errors(cases, engine, 0.0), errors(cases, engine, best)
    return {"engine": engine, "fitted_s": best, "train_cases": list(train["case_id"]),
            "before": before.set_index("case_id")[["split", "error"]], "after": after.set_index("case_id")[["split", "error"]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True, help="an engine of the published set (its `engine` column), e.g. vllm")
    args = p.parse_args(argv)
    try:
        r = fit_engine(args.engine)
    except ValueError as e:
        print(f"roofsim: error: {e}")
        return 2
    print(f"{args.engine}: CPU time per step outside the kernels {r['fitted_s'] * 1e3:.3f} ms "
          f"(fitted on {len(r['train_cases'])} training cases)")
    t = r["before"].join(r["after"]["error"].rename("after")).rename(columns={"error": "before"})
    for cid, row in t.iterrows():
        print(f"  {cid:60s} {row['split']:8s} {100 * row['before']:+6.1f}% -> {100 * row['after']:+6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
