"""Every committed validation figure, pinned: a change that moves a prediction fails here.

Each kernel dataset commits the predictions its report was written from
(``validation/data/<d>/predictions.csv``); the published engine figures commit theirs
(``validation/data/published/predictions.csv``). A change meant to move them rewrites the
files with the project's own commands (``roofsim calibrate``/the dataset importers for a
kernel dataset, ``validation.published.write_predictions()`` for the published set), so
the diff shows every figure that moved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from validation.calibrate import validate
from validation.published import PINNED_COLUMNS, PREDICTIONS, predict_all

DATA = Path(__file__).resolve().parents[2] / "validation" / "data"
KERNEL_DATASETS = ["cpu-vm-20261129", "h200-20261129", "vidur-a100", "vidur-a40", "vidur-h100"]


def _same(now: pd.Series, pinned: pd.Series) -> pd.Series:
    # written with 10 significant digits; NaN (not predicted) must stay NaN
    both_nan = now.isna() & pinned.isna()
    return both_nan | np.isclose(now, pinned, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("name", KERNEL_DATASETS)
def test_kernel_dataset_predictions_are_the_committed_ones(name):
    now = pd.DataFrame(validate(DATA / name)["rows"]).set_index("case_id")["predicted_s"]
    pinned = pd.read_csv(DATA / name / "predictions.csv").set_index("case_id")
    pinned = pinned[pinned["held_out"]]["predicted_s"]
    assert len(now) == len(pinned) > 50
    moved = ~_same(now, pinned.reindex(now.index))
    assert not moved.any(), f"{int(moved.sum())} held-out predictions moved, e.g. {now[moved].head(3).to_dict()}"


def test_published_predictions_are_the_committed_ones():
    now = predict_all(calibrated=True)[PINNED_COLUMNS].set_index("case_id")
    pinned = pd.read_csv(PREDICTIONS, keep_default_na=False, na_values=[""]).set_index("case_id")
    assert list(now.index) == list(pinned.index), "cases were added, removed or reordered"
    moved = ~_same(now["predicted"].astype(float), pinned["predicted"].astype(float))
    assert not moved.any(), (f"{int(moved.sum())} published predictions moved, e.g. "
                             f"{now[moved]['predicted'].head(3).to_dict()}; rewrite them with "
                             "validation.published.write_predictions() if that is intended")
    for col in ("split", "mode", "system", "dtype", "note"):
        assert now[col].fillna("").astype(str).tolist() == pinned[col].fillna("").astype(str).tolist(), col
