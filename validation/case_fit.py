"""One number fitted to the training split of the published figures, as ``validation.host_fit``
(a host's eager per-launch cost) and ``validation.engine_fit`` (an engine's CPU time per
step) do it: the value in ``[lo, hi]`` seconds that minimises the training cases' median
|log error| (a bounded scalar search in log space), with every case's error before and after."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from hw_models.errors import exit_for

from .fit import FitError
from .published import predict_all

#: fewer training cases than this and nothing is fitted
MIN_TRAIN = 3


def predicted(cases: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``cases`` roofsim predicts (both splits); none for none."""
    if cases.empty:
        return cases.reset_index(drop=True)
    pred = predict_all(cases)
    return cases[np.isfinite(pred["error"].to_numpy(float))].reset_index(drop=True)


def fit_seconds(cases: pd.DataFrame, errors: Callable[[pd.DataFrame, float], pd.DataFrame], base: float,
                lo: float, hi: float, what: str) -> dict:
    """``errors(cases, seconds)`` predicts ``cases`` with the number at ``seconds`` (``predict_all``'s
    frame); ``base`` is its value before the fit, ``what`` names it in the refusal."""
    train = cases[cases["split"] == "train"]
    if len(train) < MIN_TRAIN:
        raise FitError(f"{what}: only {len(train)} training cases roofsim predicts; need {MIN_TRAIN}")

    def loss(log_s: float) -> float:
        e = errors(train, math.exp(log_s))["error"].to_numpy(float)
        return float(np.median(np.abs(np.log1p(e))))

    res = minimize_scalar(loss, bounds=(math.log(lo), math.log(hi)), method="bounded", options={"xatol": 0.01})
    best = math.exp(res.x)
    before, after = errors(cases, base), errors(cases, best)
    return {"base_s": base, "fitted_s": best, "train_cases": list(train["case_id"]),
            "before": before.set_index("case_id")[["split", "error"]], "after": after.set_index("case_id")[["split", "error"]]}


def print_cases(result: dict) -> None:
    """Each case's error before and after the fit, one line each."""
    t = result["before"].join(result["after"]["error"].rename("after")).rename(columns={"error": "before"})
    for cid, row in t.iterrows():
        print(f"  {cid:60s} {row['split']:8s} {100 * row['before']:+6.1f}% -> {100 * row['after']:+6.1f}%")


def main_for(argv: list[str] | None, doc: str, arg: str, help: str, fit: Callable[[str], dict],
             headline: Callable[[str, dict], str]) -> int:
    """The command line of a fit: ``--<arg> NAME``, the fitted number's ``headline`` and every
    case before and after; bad input (a name with too few training cases, an unknown system)
    is a one-line error on stderr, exit 2."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument(f"--{arg}", required=True, help=help)
    name = getattr(p.parse_args(argv), arg)
    try:
        r = fit(name)
    except Exception as e:
        return exit_for(e)
    print(headline(name, r))
    print_cases(r)
    return 0
