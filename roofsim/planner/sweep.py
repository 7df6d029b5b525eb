"""Run many planning tasks: in this process, in local worker processes, or on Dask.

A task is one call of a top-level function of ``roofsim.planner.evaluate`` with plain
arguments, so it pickles to a worker unchanged; each worker keeps its own graph and
prefill caches. Results do not depend on where a task ran: rows are sorted afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm

Task = tuple[Callable[..., Any], tuple]


def _call(task: Task) -> Any:
    fn, args = task
    return fn(*args)


def _bar(total: int, progress: bool, desc: str):
    on = progress and sys.stderr.isatty()
    return tqdm(total=total, file=sys.stderr, disable=not on, desc=desc, unit="task", leave=False)


def run_tasks(
    tasks: Sequence[Task], *, workers: int = 1, dask: Any = None, progress: bool = True
) -> list[Any]:
    """Results of ``tasks`` in task order."""
    out: list[Any] = [None] * len(tasks)
    with _bar(len(tasks), progress, "plan") as bar:
        if dask is not None:
            _run_dask(tasks, dask, out, bar)
        elif workers > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(_call, t): i for i, t in enumerate(tasks)}
                for f in as_completed(futs):
                    out[futs[f]] = f.result()
                    bar.update(1)
        else:
            for i, t in enumerate(tasks):
                out[i] = _call(t)
                bar.update(1)
    return out


def _run_dask(tasks: Sequence[Task], dask: Any, out: list[Any], bar) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:  # pragma: no cover - dask is an optional extra
        from roofsim.errors import UserError

        raise UserError("--dask needs the 'dask' extra: pip install 'roofsim[dask]'") from None
    own = isinstance(dask, str)
    try:
        client = Client(dask) if own else dask
    except (OSError, ValueError, TimeoutError) as e:
        from roofsim.errors import UserError

        raise UserError(f"--dask {dask}: cannot reach the scheduler ({e})") from None
    try:
        futs = client.map(_call, list(tasks), pure=False)
        index = {f.key: i for i, f in enumerate(futs)}
        for f in dask_completed(futs):
            out[index[f.key]] = f.result()
            bar.update(1)
    finally:
        if own:
            client.close()
