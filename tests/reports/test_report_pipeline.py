"""The pipeline's adapters: planner tables and measurement rows into what the figures read."""

import numpy as np
import pandas as pd
import pytest

from reports.pipeline import measured_points, normalize_plan, predicted_vs_measured
from reports.report import ReportError


def test_normalize_plan_reads_ms_columns_and_keeps_infeasible_rows():
    df = pd.DataFrame({"hardware": ["a", "a", "b"], "batch": [1, 8, 1], "tp": [1, 1, 1], "tpot_ms": [10.0, 12.0, 40.0],
                       "tokens_per_s": [100.0, 666.0, 25.0], "fits": [True, False, True],
                       "reason": ["", "needs 90 GiB in hbm, has 80 GiB", ""]})
    out = normalize_plan(df)
    assert np.allclose(out["tpot_s"], [0.010, 0.012, 0.040])
    assert out["fits"].tolist() == [True, False, True] and "needs 90 GiB" in out["reason"].iat[1]


def test_normalize_plan_names_missing_columns():
    with pytest.raises(ReportError, match="TPOT"):
        normalize_plan(pd.DataFrame({"hardware": ["a"], "batch": [1]}))


def test_rows_with_predictions_pass_through_and_bad_rows_drop():
    rows = pd.DataFrame({"case_id": ["a", "b", "c"], "kind": ["matmul"] * 3, "median_s": [1e-5, 2e-5, 0.0],
                         "predicted_s": [1.1e-5, np.nan, 1e-5], "flops": [1e6, 1e6, 1e6], "bytes": [1e3, 1e3, 1e3]})
    out = predicted_vs_measured(rows, None)
    assert out["case_id"].tolist() == ["a"] and out["measured_s"].iat[0] == 1e-5


def test_rows_without_predictions_need_a_spec():
    rows = pd.DataFrame({"case_id": ["a"], "kind": ["matmul"], "median_s": [1e-5], "status": ["ok"]})
    with pytest.raises(ReportError, match="hardware.yaml"):
        predicted_vs_measured(rows, None)


def test_measured_points_use_measured_time_and_skip_work_free_cases():
    pvm = pd.DataFrame({"kind": ["matmul", "copy"], "op": ["mm", "copy"], "flops": [2e9, 0.0], "bytes": [1e7, 1e7],
                        "measured_s": [1e-3, 1e-4], "predicted_s": [1e-3, 1e-4]})
    mp = measured_points(pvm)
    assert len(mp) == 1 and mp["kind"].iat[0] == "measured"
    assert np.isclose(mp["intensity"].iat[0], 200.0) and mp["time_s"].iat[0] == 1e-3
