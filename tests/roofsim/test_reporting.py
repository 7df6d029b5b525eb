"""The report pipeline's measurement adapter: measured rows and predictions into the
table the accuracy section draws."""

import numpy as np
import pandas as pd
import pytest

from reports.report import ReportError
from roofsim.reporting import predicted_vs_measured


def test_rows_with_predictions_pass_through_and_bad_rows_drop():
    rows = pd.DataFrame({"case_id": ["a", "b", "c"], "kind": ["matmul"] * 3, "median_s": [1e-5, 2e-5, 0.0],
                         "predicted_s": [1.1e-5, np.nan, 1e-5], "flops": [1e6, 1e6, 1e6], "bytes": [1e3, 1e3, 1e3]})
    out = predicted_vs_measured(rows, None)
    assert out["case_id"].tolist() == ["a"] and out["measured_s"].iat[0] == 1e-5


def test_rows_without_predictions_need_a_spec():
    rows = pd.DataFrame({"case_id": ["a"], "kind": ["matmul"], "median_s": [1e-5], "status": ["ok"]})
    with pytest.raises(ReportError, match="hardware.yaml"):
        predicted_vs_measured(rows, None)
