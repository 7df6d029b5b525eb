"""Error statistics and the held-out split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from validation.compare import error_summary, error_table
from validation.predict import HELD_OUT_PERCENT, held_out


def _frame(meas, pred, kinds, fams=None):
    df = pd.DataFrame({"case_id": [f"c{i}" for i in range(len(meas))], "kind": kinds,
                       "family": fams or ["x"] * len(meas), "measured_s": meas, "predicted_s": pred,
                       "note": [""] * len(meas)})
    df["ape"] = (df["predicted_s"] / df["measured_s"] - 1).abs()
    return df


def test_error_summary_numbers():
    df = _frame([1.0, 1.0, 2.0, 2.0, 1.0], [1.05, 0.8, 2.0, 3.0, math.nan],
                ["matmul", "matmul", "copy", "copy", "copy"], ["matmul", "matmul", "bandwidth", "model", "x"])
    s = error_summary(df)
    assert s["n"] == 4
    assert s["median_ape"] == pytest.approx(0.125)
    assert s["p90_ape"] == pytest.approx(np.percentile([0.05, 0.2, 0.0, 0.5], 90))
    assert s["within_10pct"] == pytest.approx(0.5)
    assert s["by_kind"]["matmul"]["n"] == 2
    assert s["by_kind"]["matmul"]["median_ape"] == pytest.approx(0.125)
    assert s["by_kind"]["copy"]["within_10pct"] == pytest.approx(0.5)
    assert s["kernels"]["n"] == 3  # the model row is not a kernel
    assert s["unpredicted"] == [{"case_id": "c4", "reason": ""}]
    rows = error_table(s)
    assert rows[-1][0] == "overall" and rows[-1][1] == 4


def test_empty_summary():
    s = error_summary(pd.DataFrame())
    assert s["n"] == 0 and s["median_ape"] is None


@given(st.text(min_size=1, max_size=40))
def test_split_is_deterministic(case_id):
    assert held_out(case_id, "matmul") == held_out(case_id, "matmul")
    assert held_out(case_id, "model")


def test_split_fraction():
    ids = [f"matmul/mm/fp32/m{i}" for i in range(2000)]
    frac = np.mean([held_out(i, "matmul") for i in ids])
    assert abs(frac - HELD_OUT_PERCENT / 100) < 0.05
