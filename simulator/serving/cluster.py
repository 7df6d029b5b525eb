"""Request-level serving simulation in simpy: replicas behind a router, one engine step at a
time, each step timed by the step model (``simulator.stepmodel``).

A **replica** is one tensor-parallel group of ``tp`` devices running one engine: a
scheduler (``simulator.serving.schedulers``) over a paged KV cache whose size comes from
the footprint (device memory x utilisation, less weights and activations). Its simpy
process loops: ask the scheduler for the next step, hold for the step's time, then apply
it (prefill progress, one token per decoding sequence, first tokens, finishes). An idle
replica sleeps until a request reaches it.

The **router** sends each arriving request to a replica: ``round_robin`` or
``least_outstanding`` (fewest requests queued or running; ties to the lowest index).

**Disaggregation** (``disaggregate=(P, D)``): P prefill replicas run prompts only; a
prefilled request (its first token out) ships its KV cache to a decode replica (least
outstanding of D) over the interconnect, or the network between machines: per device of
the group, ``context x KV bytes per token`` over that link (the ``tp`` devices send their
shards in parallel); the prefill replica frees its blocks when the copy lands.

**Speculative decoding** (what-if, ``SpecConfig``): a decode-only step runs ``k`` draft
decode steps (the draft model's own step model) and one verify step of the target over
``k + 1`` tokens per sequence (dense work of ``D (k + 1)`` tokens; the attention reads each
sequence's KV once, as a decode kernel does). Each sequence then gains ``1 + a`` tokens,
``a`` the run of accepted drafts (each accepted with probability ``alpha``, at most ``k``),
so a verify step yields ``(1 - alpha^(k+1)) / (1 - alpha)`` tokens on average. Steps
carrying prefill chunks decode one token as usual.

Everything random (traffic, acceptance) is drawn from generators seeded by ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from .kv import BlockManager
from .schedulers import Request, SchedulerConfig, SchedulerError, StaticBatching, Step, scheduler_class

ROUTERS = ("round_robin", "least_outstanding")
#: between machines, when no network link is given: one 400 Gb/s NIC per GPU (NDR InfiniBand / 400G
#: RoCE, as DGX H100 and current cloud GPU nodes have), 10 us per message
DEFAULT_NETWORK = {"bandwidth": 50e9, "latency": 10e-6}


class ServeError(ValueError):
    user_facing = True


@dataclass(frozen=True)
class SpecConfig:
    draft: str
    k: int = 4
    alpha: float = 0.7

    def check(self) -> None:
        if not isinstance(self.k, int) or self.k < 1 or self.k > 64:
            raise ServeError(f"--spec-k must be a whole number in 1..64, got {self.k!r}")
        if not (0.0 <= float(self.alpha) <= 1.0):
            raise ServeError(f"--spec-alpha must be in 0..1, got {self.alpha!r}")

    @property
    def expected_tokens(self) -> float:
        a = float(self.alpha)
        return float(self.k + 1) if a >= 1.0 else (1.0 - a ** (self.k + 1)) / (1.0 - a)


@dataclass(frozen=True)
class ServeConfig:
    """One serving deployment (``roofsim serve``'s options): what runs on how many devices,
    how each replica's engine schedules it, and the targets its goodput is counted against."""

    #: zoo LLM id or config.json path
    model: str
    #: catalog id or path of the system, or a loaded ``SystemSpec``
    hardware: Any
    #: devices per replica, one tensor-parallel group
    tp: int = 1
    #: replicas behind the router (``disaggregate`` replaces it)
    replicas: int = 1
    #: a registered scheduler's name (``simulator.serving.schedulers.SCHEDULERS``)
    scheduler: str = "continuous"
    #: its limits: sequences and tokens per step, chunk size, KV block size, preemption
    sched: SchedulerConfig = field(default_factory=SchedulerConfig)
    #: ``ROUTERS``: how arriving requests pick a (prefill) replica
    router: str = "round_robin"
    #: precision spec of the step model (``workloads.precision``)
    dtype: str = "bf16"
    #: kernel fusion policy (``workloads.fusion``)
    fusion: str = "serving"
    #: ``eager`` or ``graph`` (CUDA graphs) kernel launches
    launch: str = "graph"
    #: fraction of device memory the engine may use (weights, activations, KV cache)
    gpu_memory_utilization: float = 0.9
    #: host memory per device for swapped-out KV blocks, GiB (vLLM's --swap-space)
    swap_space_gib: float = 4.0
    #: ``(P, D)``: P prefill-only and D decode replicas (module docstring)
    disaggregate: tuple[int, int] | None = None
    #: what a disaggregated KV copy crosses: the system's ``interconnect`` or a ``network``
    #: link between machines (``DEFAULT_NETWORK``)
    kv_link: str = "interconnect"
    #: speculative decoding (what-if); None: plain decoding
    spec: SpecConfig | None = None
    #: seeds the simulation's own random draws (speculative acceptance; the caller seeds traffic)
    seed: int = 0
    #: per-request time to first token a request must meet to count as good, ms; None: no target
    slo_ttft_ms: float | None = None
    #: per-request time per output token (after the first) to meet, ms; None: no target
    slo_tpot_ms: float | None = None
    #: KV blocks per replica instead of the footprint's (vLLM's --num-gpu-blocks-override)
    num_gpu_blocks: int | None = None
    #: the engine's CPU time per step outside its kernels (scheduling, input preparation,
    #: sampling, output processing), seconds, paid before every step while the GPU waits;
    #: 0: none. vLLM 0.6: 1.24 ms, fitted on published runs (validation.engine_fit)
    step_overhead_s: float = 0.0

    def check(self) -> None:
        self.sched.check()
        if self.num_gpu_blocks is not None and (not isinstance(self.num_gpu_blocks, int) or self.num_gpu_blocks < 1):
            raise ServeError(f"--num-gpu-blocks must be a whole number >= 1, got {self.num_gpu_blocks!r}")
        scheduler_class(self.scheduler)
        if self.router not in ROUTERS:
            raise ServeError(f"--router must be one of {', '.join(ROUTERS)}, got {self.router!r}")
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise ServeError(f"--replicas must be a whole number >= 1, got {self.replicas!r}")
        if not isinstance(self.tp, int) or self.tp < 1:
            raise ServeError(f"--tp must be a whole number >= 1, got {self.tp!r}")
        if not (0.05 <= float(self.gpu_memory_utilization) <= 1.0):
            raise ServeError(f"--gpu-memory-utilization must be in 0.05..1, got {self.gpu_memory_utilization!r}")
        if not (math.isfinite(self.swap_space_gib) and self.swap_space_gib >= 0):
            raise ServeError(f"--swap-space-gib must be >= 0, got {self.swap_space_gib!r}")
        if not (isinstance(self.step_overhead_s, (int, float)) and math.isfinite(self.step_overhead_s)
                and 0 <= self.step_overhead_s < 1):
            raise ServeError(f"--step-overhead must be a time in 0..1 s (e.g. 1.2ms), got {self.step_overhead_s!r} s")
        if self.disaggregate is not None:
            p, d = self.disaggregate
            if p < 1 or d < 1:
                raise ServeError(f"--disaggregate P:D needs at least one replica of each, got {p}:{d}")
            if self.scheduler == "static":
                raise ServeError("--disaggregate needs a continuous or chunked scheduler, not static")
        if self.kv_link not in ("interconnect", "network"):
            raise ServeError(f"--kv-link must be interconnect or network, got {self.kv_link!r}")
        if self.spec is not None:
            self.spec.check()
        for name in ("slo_ttft_ms", "slo_tpot_ms"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ServeError(f"--{name.replace('_', '-')} must be > 0 ms, got {v!r}")

    @property
    def num_replicas(self) -> int:
        return sum(self.disaggregate) if self.disaggregate else self.replicas


def _link_time(link, nbytes: float) -> float:
    """Seconds to copy ``nbytes`` over a ``LinkSpec`` (bulk DMA at its size's efficiency)."""
    pts = link.efficiency.points
    xs = np.log10([max(p[0], 1.0) for p in pts])
    ys = [p[1] for p in pts]
    eff = float(np.interp(math.log10(max(nbytes, 1.0)), xs, ys)) if len(pts) > 1 else float(ys[0])
    return float(link.latency.value) + nbytes / (float(link.bandwidth.value) * eff)


class Replica:
    def __init__(self, idx: int, sim: Simulation, role: str) -> None:
        self.idx, self.sim, self.role = idx, sim, role
        cfg = sim.cfg
        self.model = sim.step_model
        mem = sim.memory
        kv_tokens = max(0.0, mem.kv_capacity) / mem.kv_per_token
        host_blocks = int(cfg.swap_space_gib * 2**30 / (mem.kv_per_token * cfg.sched.block_size))
        blocks = cfg.num_gpu_blocks if cfg.num_gpu_blocks is not None else int(kv_tokens // cfg.sched.block_size)
        self.kv = BlockManager(blocks, cfg.sched.block_size, host_blocks=host_blocks)
        cls = scheduler_class(cfg.scheduler)
        per_block = mem.kv_per_token * cfg.sched.block_size
        host_link = getattr(sim.system, "host_link", None)
        swap = (lambda blocks: _link_time(host_link, blocks * per_block)) if host_link is not None else None
        self.sched = cls(cfg.sched, self.kv, swap_time=swap)
        self.sched.prefill_only = role == "prefill"
        self.spec = cfg.spec if role != "prefill" else None
        self.sched.lookahead = self.spec.k if self.spec else 0
        self.wake: simpy.Event | None = None
        self.busy_s = 0.0

    # -- timing -------------------------------------------------------------------------
    def step_time(self, step: Step) -> float:
        m = self.model
        if step.padded is not None:  # static batching: every sequence at the padded length
            kind, b, n = step.padded
            if kind == "prefill":
                return m.step([(n, 0)] * b)
            return m.step((), b, n)
        chunks = [(c, r.prefilled) for r, c in step.prefills if c > 0]
        d = len(step.decodes)
        ctx = step.decode_context
        if ctx is None:
            ctx = sum(r.prompt + r.generated for r in step.decodes) / d if d else 0.0
        if self.spec is not None and d and not chunks:
            k = self.spec.k
            draft = self.sim.draft_model.decode_time(d, ctx) * k
            verify = m.dense(d * (k + 1)) + m.layers * m.attn_decode(d, ctx)
            return draft + verify
        return m.step(chunks, d, ctx)

    # -- applying a step ----------------------------------------------------------------
    def apply(self, step: Step, now: float) -> None:
        sched = self.sched
        if isinstance(sched, StaticBatching):
            for r in sched.finish_step(now):
                self.sim.finished(r)
            return
        done = False
        for r, c in step.prefills:
            r.prefilled += c
            if r.prefilled >= r.target:
                r.generated += 1
                if r.t_first < 0:
                    r.t_first = now
                if sched.prefill_only:
                    self.sim.handover(self, r)
                    done = True
                elif r.generated >= r.output:
                    r.t_finish = now
                    done = True
        if step.decodes:
            if self.spec is not None and not step.prefills:
                k, a = self.spec.k, float(self.spec.alpha)
                if a >= 1.0:
                    gains = np.full(len(step.decodes), k + 1)
                elif a <= 0.0:
                    gains = np.ones(len(step.decodes), dtype=np.int64)
                else:
                    gains = np.minimum(self.sim.rng.geometric(1.0 - a, len(step.decodes)), k + 1)
                for r, g in zip(step.decodes, gains.tolist(), strict=True):
                    r.generated = min(r.output, r.generated + g)
                    if r.generated >= r.output:
                        r.t_finish = now
                        done = True
            else:
                for r in step.decodes:
                    r.generated += 1
                    if r.generated >= r.output:
                        r.t_finish = now
                        done = True
        if done:
            keep = []
            for r in sched.running:
                if r.t_finish >= 0:
                    sched.release(r)
                    self.sim.finished(r)
                elif sched.prefill_only and r.prefilled >= r.target:
                    pass  # handed over; blocks freed when its KV copy lands
                else:
                    keep.append(r)
            sched.running = keep

    def notify(self) -> None:
        if self.wake is not None and not self.wake.triggered:
            self.wake.succeed()

    def process(self):
        env = self.sim.env
        sched = self.sched
        log = self.sim.log
        while True:
            step = sched.next_step(env.now) if sched.has_work() else None
            if step is None:
                self.wake = env.event()
                yield self.wake
                self.wake = None
                continue
            dur = self.step_time(step) + step.extra_s + self.sim.cfg.step_overhead_s
            start = env.now
            waiting = len(sched.waiting)
            yield env.timeout(dur)
            self.busy_s += dur
            npre = len(step.prefills)
            ptok = sum(c for _, c in step.prefills) if step.padded is None else step.padded[1] * step.padded[2] * (step.padded[0] == "prefill")
            log.append((self.idx, start, dur, step.kind, ptok, npre, len(step.decodes), self.kv.used, self.kv.total,
                        len(sched.running) if not isinstance(sched, StaticBatching) else len(sched.batch), waiting,
                        sched.outstanding))
            self.apply(step, env.now)


class Simulation:
    def __init__(self, cfg: ServeConfig, step_model, *, draft_model=None, memory=None, system=None) -> None:
        self.cfg = cfg
        self.step_model = step_model
        self.draft_model = draft_model
        self.system = system if system is not None else getattr(step_model, "system", None)
        # each scheduler says how many tokens its steps may run (its class, so aliases agree)
        self.memory = memory or step_model.memory(scheduler_class(cfg.scheduler).step_tokens(cfg.sched),
                                                  cfg.gpu_memory_utilization)
        m = self.memory
        if cfg.num_gpu_blocks is None and m.kv_capacity < m.kv_per_token * cfg.sched.block_size:
            hw = cfg.hardware if isinstance(cfg.hardware, str) else getattr(cfg.hardware, "id", "?")
            raise ServeError(f"does not fit: {cfg.model} on {hw} tp {cfg.tp}: weights {m.weights / 2**30:.1f} GiB "
                             f"and activations {m.activations / 2**30:.1f} GiB per device leave no room for the KV "
                             f"cache in {m.usable / 2**30:.1f} GiB; use more tensor parallelism or a bigger device")
        self.env = simpy.Environment()
        self.rng = np.random.default_rng([int(cfg.seed), 1])
        self.log: list[tuple] = []
        self.done: list[Request] = []
        if cfg.disaggregate:
            p, d = cfg.disaggregate
            self.replicas = [Replica(i, self, "prefill") for i in range(p)]
            self.replicas += [Replica(p + i, self, "decode") for i in range(d)]
            self.front = self.replicas[:p]
            self.back = self.replicas[p:]
        else:
            self.replicas = [Replica(i, self, "both") for i in range(cfg.replicas)]
            self.front = self.replicas
            self.back = []
        self._rr = 0
        self.in_transfer = 0
        self.transfers: list[tuple] = []

    def route(self, pool: list[Replica]) -> Replica:
        if self.cfg.router == "round_robin" and pool is self.front:
            r = pool[self._rr % len(pool)]
            self._rr += 1
            return r
        return min(pool, key=lambda x: (x.sched.outstanding, x.idx))

    def finished(self, r: Request) -> None:
        self.done.append(r)

    def handover(self, src: Replica, r: Request) -> None:
        self.in_transfer += 1
        self.env.process(self._transfer(src, r))

    def _transfer(self, src: Replica, r: Request):
        nbytes = r.context * self.memory.kv_per_token
        link = self.system.interconnect if (self.cfg.kv_link == "interconnect" and self.system is not None) else None
        if link is not None:
            t = _link_time(link, nbytes)
        else:
            t = DEFAULT_NETWORK["latency"] + nbytes / DEFAULT_NETWORK["bandwidth"]
        start = self.env.now
        yield self.env.timeout(t)
        src.sched.release(r)
        src.notify()
        self.in_transfer -= 1
        self.transfers.append((r.id, src.idx, start, t, nbytes))
        dst = self.route(self.back)
        r.decode_replica = dst.idx
        r.t_transfer = t
        if r.generated >= r.output:
            r.t_finish = self.env.now
            self.finished(r)
            return
        dst.sched.add(r)
        dst.notify()

    def _arrivals(self, reqs: list[Request]):
        env = self.env
        for r in reqs:
            if r.arrival > env.now:
                yield env.timeout(r.arrival - env.now)
            rep = self.route(self.front)
            r.replica = rep.idx
            rep.sched.add(r)
            rep.notify()

    def run(self, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> list[Request]:
        reqs = [Request(i, float(a), int(p), int(o)) for i, (a, p, o) in
                enumerate(zip(arrival.tolist(), prompt.tolist(), output.tolist(), strict=True))]
        if not reqs:
            raise ServeError("no requests to serve (the traffic is empty)")
        longest = max(reqs, key=lambda q: q.prompt + q.output)
        for rep in self.replicas:
            why = rep.sched.check_request(longest)
            if why:
                raise ServeError(f"cannot serve: {why} (model {self.cfg.model}, tp {self.cfg.tp}); "
                                 "use more tensor parallelism, a bigger device or shorter requests")
        top = max(r.prompt for r in reqs)
        if self.cfg.scheduler in ("continuous", "vllm") and top > self.cfg.sched.max_num_batched_tokens:
            raise ServeError(f"a prompt of {top} tokens exceeds --max-num-batched-tokens "
                             f"{self.cfg.sched.max_num_batched_tokens}; raise it or use --scheduler chunked")
        self.env.process(self._arrivals(reqs))
        for rep in self.replicas:
            self.env.process(rep.process())
        self.env.run()
        unfinished = [r for r in reqs if r.t_finish < 0]
        if unfinished:  # pragma: no cover - a scheduler bug, never bad input
            raise SchedulerError(f"{len(unfinished)} requests never finished (scheduler {self.cfg.scheduler})")
        return reqs
