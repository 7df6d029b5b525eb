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

import pandas as pd

from .case_fit import fit_seconds, main_for, predicted
from .published import engine_steps, load_cases, predict_all


def engine_cases(engine: str) -> pd.DataFrame:
    """The published cases of ``engine`` that roofsim predicts (both splits)."""
    cases = load_cases()
    return predicted(cases[cases["engine"] == engine])


def errors(cases: pd.DataFrame, engine: str, seconds: float, cache: dict | None = None) -> pd.DataFrame:
    """``predict_all`` of ``cases`` with ``engine`` at ``seconds`` per step; ``cache`` keeps the
    simulated steps across calls (the per-step time is added after them, so they stay valid)."""
    return predict_all(cases, engines={**engine_steps(), engine: seconds}, cache=cache)


def fit_engine(engine: str, lo: float = 1e-5, hi: float = 2e-2) -> dict:
    steps: dict = {}
    return {"engine": engine, **fit_seconds(engine_cases(engine), lambda c, s: errors(c, engine, s, steps), 0.0,
                                            lo, hi, engine)}


def main(argv: list[str] | None = None) -> int:
    return main_for(argv, __doc__, "engine", "an engine of the published set (its `engine` column), e.g. vllm",
                    fit_engine, lambda name, r: f"{name}: CPU time per step outside the kernels "
                    f"{r['fitted_s'] * 1e3:.3f} ms (fitted on {len(r['train_cases'])} training cases)")


if __name__ == "__main__":
    raise SystemExit(main())
