"""The closed-form engine for a contention-free single-stream chain, in numpy.

With one stream, no prefetch copies and no cross-stream dependencies at most one op
runs at a time, so no bandwidth is shared and each op takes its cost-model duration
``d_i``. The host issues op ``i`` at ``issue_i`` (cumulative host cost), and

    end_i = max(issue_i, end_{i-1}) + d_i

unrolls to ``end_i = C_i + max_{j<=i}(issue_j - C_{j-1})`` with ``C`` the running sum
of durations: one ``cumsum`` and one ``maximum.accumulate``. On a CPU device
(``EnginePlan.serial_host``) dispatch and kernels alternate on one thread: one running sum.
``simulate(engine="auto")`` uses it exactly when ``EnginePlan.chain`` holds; tests check it
against the simpy engine.
"""

from __future__ import annotations

import numpy as np

from .engine import EnginePlan, Timeline
from .resources import NO_RESOURCE


def chain_times(host_cost: np.ndarray, dur: np.ndarray, serial_host: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(issue, start, end) arrays of the recurrence for per-op host costs and durations.

    ``serial_host`` (a CPU device: one thread dispatches and computes): ``issue_i =
    end_{i-1} + host_i`` and ``end_i = issue_i + dur_i``, one running sum of host cost
    and duration interleaved.
    """
    host_cost = np.asarray(host_cost, dtype=float)
    dur = np.asarray(dur, dtype=float)
    if serial_host:
        t = np.cumsum(np.column_stack((host_cost, dur)).ravel())
        issue = t[0::2].copy()
        return issue, issue.copy(), t[1::2].copy()
    issue = np.cumsum(host_cost)
    c = np.cumsum(dur)
    c_prev = c - dur
    end = c + np.maximum.accumulate(issue - c_prev)
    start = np.maximum(issue, np.concatenate(([0.0], end[:-1])))
    return issue, start, end


def run_fast(eplan: EnginePlan) -> Timeline:
    if not eplan.chain:
        raise ValueError("the fast path is exact only for a single-stream chain without prefetch")
    issue, start, end = chain_times(eplan.host_cost, eplan.dur, eplan.serial_host)
    empty = np.zeros(0)
    return Timeline(issue, start, end, np.full(eplan.n, NO_RESOURCE, dtype=np.int64), empty, empty,
                    float(eplan.host_cost.sum()))


def steady_period(host_total, dur_total, serial_host=False):
    """Seconds per pass of a sequence of ops replayed in a loop forever, as
    ``chain_times`` would find it after enough passes: the fixed point of its recurrence.

    With a host that runs ahead (a GPU) each pass costs ``max(sum host, sum dur)``:
    if the device is slower the host's lead grows every pass until the device never
    waits; if the host is slower the device waits every pass. On a serial host (a
    CPU device) dispatch and kernels alternate: ``sum host + sum dur``. This is how a
    benchmark loop's per-call time (the harness's ``inner`` calls) relates to the cost
    model; a test checks it against ``chain_times`` over many passes. Takes arrays of
    per-sequence totals as well as floats.
    """
    host_total = np.asarray(host_total, dtype=float)
    dur_total = np.asarray(dur_total, dtype=float)
    out = np.where(serial_host, host_total + dur_total, np.maximum(host_total, dur_total))
    return float(out) if out.ndim == 0 else out
