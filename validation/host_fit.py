"""Fit a host's eager per-launch cost to the training split of the published figures.

``dispatch_overhead`` is the CPU time one kernel launch costs inside Hugging Face model
code (Python modules, the dispatcher, the launch call). A kernel benchmark cannot measure
it (a bare op in a loop skips the model code), and in a batch-1 eager decode it is the
whole step: the GPU waits for the host. The published set holds such figures
(``validation/data/published/cases.csv``, engine modes ``none+eager``). This module
finds the one value that makes the host-bound training cases on a system right (the
minimum of the median |log error| over them, by a bounded scalar search) and reports
the held-out cases' errors before and after; nothing is written. The value goes into the
host's catalog file by hand, with the command and the cases named in its ``source``.

``python -m validation.host_fit --system a100-80gb-cal``
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from hw_models.catalog import load
from hw_models.quantity import Seconds

from .published import load_cases, mode_of, predict_all, system_of

#: the engine mode whose host cost is the model-code dispatch
EAGER_MODE = ("none", "eager")


def _with_dispatch(system_id: str, seconds: float):
    spec = load(system_id).model_copy(deep=True)
    spec.host.dispatch_overhead = Seconds(value=f"{seconds:.9g} s", source="candidate of validation.host_fit")
    return spec


def eager_cases(system_id: str) -> pd.DataFrame:
    """The published cases run in eager model code on ``system_id`` that roofsim predicts (both splits)."""
    cases = load_cases()
    mine = cases[[mode_of(str(r["engine"]), str(r["mode"])) == EAGER_MODE and system_of(str(r["hardware"]), True)
                  == system_id for _, r in cases.iterrows()]]
    pred = predict_all(mine)
    return mine[np.isfinite(pred["error"].to_numpy(float))].reset_index(drop=True)


def errors(cases: pd.DataFrame, system_id: str, seconds: float) -> pd.DataFrame:
    return predict_all(cases, systems={system_id: _with_dispatch(system_id, seconds)})


def fit_dispatch(system_id: str, lo: float = 2e-6, hi: float = 80e-6) -> dict:
    cases = eager_cases(system_id)
    train = cases[cases["split"] == "train"]
    if len(train) < 3:
        raise ValueError(f"{system_id}: only {len(train)} eager training cases; need 3")

    def loss(log_s: float) -> float:
        e = errors(train, system_id, math.exp(log_s))["error"].to_numpy(float)
        return float(np.median(np.abs(np.log1p(e))))

    res = minimize_scalar(loss, bounds=(math.log(lo), math.log(hi)), method="bounded", options={"xatol": 0.01})
    best = math.exp(res.x)
    base = load(system_id).host.dispatch_overhead.value
    before, after = errors(cases, system_id, base), errors(cases, system_id, best)
    return {"system": system_id, "base_s": base, "fitted_s": best, "train_cases": list(train["case_id"]),
            "before": before.set_index("case_id")[["split", "error"]], "after": after.set_index("case_id")[["split", "error"]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", required=True, help="a catalog system with published eager cases")
    args = p.parse_args(argv)
    r = fit_dispatch(args.system)
    print(f"{args.system}: dispatch_overhead {r['base_s'] * 1e6:.1f} us -> {r['fitted_s'] * 1e6:.1f} us "
          f"(fitted on {len(r['train_cases'])} training cases)")
    t = r["before"].join(r["after"]["error"].rename("after")).rename(columns={"error": "before"})
    for cid, row in t.iterrows():
        print(f"  {cid:60s} {row['split']:8s} {100 * row['before']:+6.1f}% -> {100 * row['after']:+6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
