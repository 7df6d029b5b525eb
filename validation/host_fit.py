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

import pandas as pd

from hw_models.catalog import load
from hw_models.quantity import Seconds

from .case_fit import fit_seconds, main_for, predicted
from .published import load_cases, mode_of, predict_all, system_of

#: the engine mode whose host cost is the model-code dispatch
EAGER_MODE = ("none", "eager")


def _with_dispatch(system_id: str, seconds: float):
    spec = load(system_id)  # a copy of its own
    spec.host.dispatch_overhead = Seconds(value=f"{seconds:.9g} s", source="candidate of validation.host_fit")
    return spec


def eager_cases(system_id: str) -> pd.DataFrame:
    """The published cases run in eager model code on ``system_id`` that roofsim predicts (both splits)."""
    cases = load_cases()
    return predicted(cases[[mode_of(str(r["engine"]), str(r["mode"])) == EAGER_MODE
                            and system_of(str(r["hardware"]), True) == system_id for _, r in cases.iterrows()]])


def errors(cases: pd.DataFrame, system_id: str, seconds: float) -> pd.DataFrame:
    return predict_all(cases, systems={system_id: _with_dispatch(system_id, seconds)})


def fit_dispatch(system_id: str, lo: float = 2e-6, hi: float = 80e-6) -> dict:
    base = load(system_id).host.dispatch_overhead.value
    r = fit_seconds(eager_cases(system_id), lambda c, s: errors(c, system_id, s), base, lo, hi, f"{system_id} (eager)")
    return {"system": system_id, **r}


def main(argv: list[str] | None = None) -> int:
    return main_for(argv, __doc__, "system", "a catalog system with published eager cases", fit_dispatch,
                    lambda name, r: f"{name}: dispatch_overhead {r['base_s'] * 1e6:.1f} us -> "
                    f"{r['fitted_s'] * 1e6:.1f} us (fitted on {len(r['train_cases'])} training cases)")


if __name__ == "__main__":
    raise SystemExit(main())
