"""The sections' adapters: planner tables and measured kernels into what the figures read."""

import numpy as np
import pandas as pd
import pytest

from reports.report import ReportError
from reports.sections import measured_points, normalize_plan


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


def test_measured_points_use_measured_time_and_skip_work_free_cases():
    pvm = pd.DataFrame({"kind": ["matmul", "copy"], "op": ["mm", "copy"], "flops": [2e9, 0.0], "bytes": [1e7, 1e7],
                        "measured_s": [1e-3, 1e-4], "predicted_s": [1e-3, 1e-4]})
    mp = measured_points(pvm)
    assert len(mp) == 1 and mp["kind"].iat[0] == "measured"
    assert np.isclose(mp["intensity"].iat[0], 200.0) and mp["time_s"].iat[0] == 1e-3
