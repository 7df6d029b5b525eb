"""Processor-sharing bandwidth resources, one simpy wake-up per completion.

Every memory level, tier memory and link direction is a resource id (``dev0.hbm``,
``host.link.h2d``, ...: ``hw_models.resource_id``). A *job* (one op, or one prefetch
copy) holds a *flow* on each resource it moves bytes through; a flow's work is measured in seconds at the full rate
the cost model granted it (``bytes / bandwidth``), so an uncontended job takes exactly
its cost-model time. ``n`` flows on one resource each progress at ``1/n`` of their rate
(equal processor sharing; per-op efficiency differences are already inside the work).

A job ends at ``max(start + floor, last_flow_end + tail)``: ``floor`` is its uncontended
duration (compute, fixed latency and memory overlapped, from the cost model) and
``tail`` the part that cannot overlap the byte streams (kernel and link fixed latency),
so contention only ever stretches a job, never shortens it.

Flows on different resources never interact, so a job that starts on resources no other
live job uses is *solo*: it runs at full rate, its end is known at its start, and it costs
one timer and no bookkeeping while other jobs come and go on other resources (an op on
HBM while a prefetch copy crosses the host link). Only when a later job joins one of its
resources does it enter the *shared* set, with its remaining work (elapsed time spent at
full rate); a solo job's drained flows are recovered there exactly from the residual.

For the shared set the manager keeps a single pending timer for the next moment anything
can change, invalidated by a version counter when the set of flows changes; between
changes nothing is simulated, however long a flow is (no per-tick events). A shared job
alone on all of its resources affects nobody when its shorter flows drain, so its next
moment is simply its end. Drain times found late are recovered exactly from the
(negative) residual work, since rates are constant between changes.
"""

from __future__ import annotations

import simpy

#: a flow with less work than this (seconds, 1 ps) counts as finished; guards float residue
_EPS = 1e-12
_INF = float("inf")
#: ``Job.slowed_by`` and ``Job.last_res`` (and the engine's ``Timeline.slowed_by``) before
#: any flow has drained: no resource (indices are >= 0)
NO_RESOURCE = -1
#: ``Job.end_at`` until every flow has drained; once known it is a time, so ``>= 0.0``
#: tests whether it is known
END_UNKNOWN = -1.0


class Job:
    """One op or copy in flight: its live flows (resource index, remaining work) and timing."""

    __slots__ = ("res", "work", "start", "floor", "tail", "event", "done_at", "end_at", "slowed_by", "last_res",
                 "solo")

    def __init__(self, res, work, start, floor, tail, event) -> None:
        self.res = res
        self.work = work
        self.start = start
        self.floor = floor
        self.tail = tail
        self.event = event
        self.done_at = start  # when the last drained flow drained
        self.end_at = END_UNKNOWN  # known once every flow has drained
        self.slowed_by = NO_RESOURCE  # resource whose flow drained last (what stretched it, if it was stretched)
        self.last_res = NO_RESOURCE
        self.solo = False  # running alone on its resources (see the module docstring)


class SharedBandwidth:
    """All bandwidth resources of one simulation, shared by processor sharing."""

    __slots__ = ("env", "users", "jobs", "last", "version", "names", "solo_of")

    def __init__(self, env: simpy.Environment, names: list[str]) -> None:
        self.env = env
        self.names = names
        self.users = [0] * len(names)  # live flows per resource
        self.jobs: list[Job] = []  # the shared set
        self.solo_of: list[Job | None] = [None] * len(names)  # the solo job holding each resource
        self.last = 0.0
        self.version = 0

    def start(self, res: list[int], work: list[float], floor: float, tail: float) -> simpy.Event:
        """Begin a job now. Yield the returned event, then ``finish(job)`` with its value::

            job = yield bw.start(res, work, floor, tail)
            if not bw.finish(job):
                yield bw.wait(job)
        """
        env = self.env
        users = self.users
        if not any(users[r] for r in res):
            # alone on its resources: its end is known now, one timer and no bookkeeping
            # unless another job joins one of them (then ``finish`` says so)
            job = Job(res, list(work), env.now, floor, tail, None)
            solo_of = self.solo_of
            for r in res:
                users[r] += 1
                solo_of[r] = job
            job.solo = True
            return env.timeout(max(floor, max(work) + tail) if work else floor, job)
        self._advance()
        self._join(res)
        self._retire()
        job = Job(res, list(work), env.now, floor, tail, env.event())
        for r in res:
            users[r] += 1
        self.jobs.append(job)
        self._schedule()
        return job.event

    def finish(self, job: Job) -> bool:
        """True if ``job`` has ended now; False if contention stretched it (then ``wait``)."""
        if job.end_at >= 0.0:
            # its flows drained early under contention, yet floor or tail may end it after now
            return job.end_at <= self.env.now + 1e-15
        if not job.solo:
            return False
        solo_of = self.solo_of
        for r in job.res:
            self.users[r] -= 1
            solo_of[r] = None
        job.solo = False
        job.end_at = self.env.now
        return True

    def _join(self, res: list[int]) -> None:
        """Move the solo jobs holding any of ``res`` into the shared set, with the work left
        after running at full rate since they started (call after ``_advance``)."""
        solo_of = self.solo_of
        now = self.env.now
        for r in res:
            job = solo_of[r]
            if job is None:
                continue
            elapsed = now - job.start
            job.work = [w - elapsed for w in job.work]
            for q in job.res:
                solo_of[q] = None
            job.solo = False
            job.done_at = job.start
            self.jobs.append(job)

    def wait(self, job: Job) -> simpy.Event:
        """The event that fires when a stretched ``job`` ends."""
        if job.event is None:
            job.event = self.env.event()
        return job.event

    # -- internals ------------------------------------------------------------------
    def _advance(self) -> None:
        """Spend the time since the last change on every live flow at its shared rate."""
        now = self.env.now
        dt = now - self.last
        self.last = now
        if dt <= 0.0:
            return
        users = self.users
        for job in self.jobs:
            w = job.work
            for k, r in enumerate(job.res):
                w[k] -= dt / users[r]

    def _retire(self) -> None:
        """Drop drained flows (at their true drain times) and end finished jobs."""
        now = self.env.now
        users = self.users
        jobs = self.jobs
        drained = []
        for job in jobs:
            w = job.work
            if w and min(w) <= _EPS:
                res = job.res
                for k in range(len(w)):
                    if w[k] <= _EPS:
                        # rates were constant since the last change: residual work says when it drained
                        drained.append((job, k, now + min(w[k], 0.0) * users[res[k]]))
        if drained:
            touched = []
            for job, k, t in drained:
                r = job.res[k]
                if t >= job.done_at:
                    job.done_at = t
                    job.last_res = r
                users[r] -= 1
                job.work[k] = None
                touched.append(job)
            for job in touched:
                if job.work and None in job.work:
                    live = [k for k, x in enumerate(job.work) if x is not None]
                    job.res = [job.res[k] for k in live]
                    job.work = [job.work[k] for k in live]
                if not job.res and job.end_at < 0.0:
                    job.end_at = max(job.start + job.floor, job.done_at + job.tail)
                    job.slowed_by = job.last_res
        keep = []
        limit = now + 1e-15
        for job in jobs:
            e = job.end_at
            if 0.0 <= e <= limit:
                if job.event is not None:
                    job.event.succeed(job)
            else:
                keep.append(job)
        self.jobs = keep

    def _schedule(self) -> None:
        """Arm one timer for the next moment something changes."""
        now = self.env.now
        users = self.users
        nxt = _INF
        for job in self.jobs:
            if job.end_at >= 0.0:
                t = job.end_at
            else:
                w, res = job.work, job.res
                if all(users[r] == 1 for r in res):
                    t = max(job.start + job.floor, now + max(w) + job.tail)
                else:
                    t = min(now + w[k] * users[r] for k, r in enumerate(res))
            if t < nxt:
                nxt = t
        self.version += 1
        if nxt < _INF:
            v = self.version
            ev = self.env.timeout(max(nxt - now, 0.0))
            ev.callbacks.append(lambda _ev: self._wake(v))

    def _wake(self, version: int) -> None:
        if version != self.version:
            return  # superseded by a later change
        self._advance()
        self._retire()
        self._schedule()
