"""The eager host cost fitted to the published training cases (``validation.host_fit``)."""

from __future__ import annotations

import numpy as np

from hw_models.catalog import load
from validation.host_fit import eager_cases, errors


def test_the_committed_dispatch_cost_is_where_the_training_cases_want_it():
    # the catalog value of epyc-7742-server came from this fit: the training cases' median
    # |log error| there is lower than a fifth either side, and lower than the old estimate
    cases = eager_cases("a100-80gb-cal")
    assert set(cases["split"]) == {"train", "heldout"} and (cases["split"] == "train").sum() >= 3
    train = cases[cases["split"] == "train"]
    committed = load("a100-80gb-cal").host.dispatch_overhead.value

    def loss(seconds: float) -> float:
        e = errors(train, "a100-80gb-cal", seconds)["error"].to_numpy(float)
        return float(np.median(np.abs(np.log1p(e))))

    at = loss(committed)
    assert at < loss(committed * 0.8) and at < loss(committed * 1.2) and at < loss(12e-6)


def test_a_system_without_eager_cases_is_a_one_line_error(capsys):
    from validation.host_fit import main

    assert main(["--system", "l4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("roofsim: error: l4 (eager): only 0 training cases") and "\n" not in err
