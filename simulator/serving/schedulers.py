"""Replica schedulers: which requests run in the next engine step, and with what tokens.

One policy per class, chosen by name from ``SCHEDULERS``; ``register_scheduler`` adds
one (a subclass of ``Scheduler`` implementing ``next_step``). Built in:

- ``static``: batching as Hugging Face ``generate`` does: when idle, take up to
  ``max_num_seqs`` queued requests, prefill them padded to the longest prompt, decode the
  whole batch until its longest output is done, and return every result at the end.
- ``continuous`` (also ``vllm``): vLLM's default scheduler (v0, no chunking). Each step is
  either a prefill of whole prompts (FCFS while ``max_num_seqs``, ``max_num_batched_tokens``
  and free KV blocks allow; prefills go first) or a decode step of every running sequence.
- ``chunked`` (also ``sarathi``): Sarathi-Serve's chunked prefill: each step has a budget
  of ``chunk_size`` tokens; every running decode takes one, partly prefilled prompts and
  then new ones fill the rest in chunks, so prefills never stall decodes for long.

KV memory (``simulator.serving.kv``): a sequence is admitted when blocks for its whole
prompt are free (above the watermark); a decode that needs a new block when none is free
preempts the most recently admitted running sequence: ``recompute`` frees its blocks and
puts it back at the head of the queue to prefill its prompt and generated tokens again
(vLLM's default); ``swap`` copies its blocks to host memory over the host link (the time
is added to the step) and brings them back before any new admission.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


class SchedulerError(ValueError):
    user_facing = True


class Request:
    __slots__ = ("id", "arrival", "prompt", "output", "prefilled", "target", "generated", "blocks",
                 "t_schedule", "t_first", "t_finish", "preemptions", "replica", "swapped", "decode_replica",
                 "t_transfer")

    def __init__(self, rid: int, arrival: float, prompt: int, output: int) -> None:
        self.id = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.prefilled = 0  # tokens of ``target`` whose KV exists
        self.target = prompt  # tokens to prefill (prompt, plus generated ones after a recompute)
        self.generated = 0
        self.blocks = 0
        self.t_schedule = -1.0
        self.t_first = -1.0
        self.t_finish = -1.0
        self.preemptions = 0
        self.replica = -1
        self.decode_replica = -1
        self.swapped = False
        self.t_transfer = 0.0

    @property
    def context(self) -> int:
        """Tokens in this sequence's KV cache once its next token's input is written."""
        return self.prompt + self.generated


@dataclass
class Step:
    """One engine step: prefill chunks [(request, tokens)], decoding requests, extra time."""

    prefills: list = field(default_factory=list)
    decodes: list = field(default_factory=list)
    extra_s: float = 0.0  # swap copies
    #: mean context of the decoding sequences (None: computed from them)
    decode_context: float | None = None
    #: static batching: the padded shape the step runs at
    padded: tuple | None = None

    @property
    def kind(self) -> str:
        if self.prefills and self.decodes:
            return "mixed"
        return "prefill" if self.prefills else "decode"


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunk_size: int = 512
    preemption: str = "recompute"
    block_size: int = 16

    def check(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "chunk_size", "block_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise SchedulerError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {v!r}")
        if self.preemption not in ("recompute", "swap"):
            raise SchedulerError(f"--preemption must be recompute or swap, got {self.preemption!r}")


class Scheduler:
    """Base: queues and KV bookkeeping; subclasses choose each step in ``next_step``."""

    name = "base"

    def __init__(self, cfg: SchedulerConfig, kv, swap_time=None) -> None:
        self.cfg = cfg
        self.kv = kv
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.swapped: deque[Request] = deque()
        #: seconds to copy ``blocks`` KV blocks between device and host (one direction)
        self.swap_time = swap_time or (lambda blocks: 0.0)
        self.prefill_only = False  # a disaggregated prefill replica
        self.lookahead = 0  # extra tokens a decode may append (speculative decoding)

    @classmethod
    def step_tokens(cls, cfg: SchedulerConfig) -> int:
        """The most tokens one engine step can run: what a replica's activations are sized for."""
        return cfg.max_num_batched_tokens

    # -- queues -----------------------------------------------------------------------
    def add(self, req: Request) -> None:
        self.waiting.append(req)

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running) + len(self.swapped)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running or self.swapped)

    def check_request(self, req: Request) -> str | None:
        """Why ``req`` can never run on this replica (None: it can)."""
        need = self.kv.blocks_for(req.prompt + req.output)
        if need > self.kv.total - self.kv.watermark:
            return (f"a request of {req.prompt}+{req.output} tokens needs {need} KV blocks; the replica has "
                    f"{self.kv.total - self.kv.watermark}")
        return None

    # -- KV ---------------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        """Blocks for ``req``'s whole prefill target (plus its first token); False if short."""
        need = self.kv.blocks_for(req.target + (0 if self.prefill_only else 1)) - req.blocks
        if need > 0 and not self.kv.can_admit(need):
            return False
        if need > 0:
            self.kv.take(need)
            req.blocks += need
        return True

    def start_next(self, now: float) -> Request | None:
        """Move the first waiting request to running if its KV blocks fit; None if they do not."""
        r = self.waiting[0]
        if not self.admit(r):
            return None
        self.waiting.popleft()
        if r.t_schedule < 0:
            r.t_schedule = now
        self.running.append(r)
        return r

    def release(self, req: Request) -> None:
        if req.blocks:
            self.kv.give(req.blocks)
            req.blocks = 0

    def _grow(self, req: Request, tokens: int) -> bool:
        need = self.kv.blocks_for(tokens) - req.blocks
        if need <= 0:
            return True
        if need > self.kv.free:
            return False
        self.kv.take(need)
        req.blocks += need
        return True

    def preempt(self, victim: Request, step: Step) -> None:
        """Take ``victim`` off the running list: swap it out or drop it for recompute."""
        self.running.remove(victim)
        victim.preemptions += 1
        if self.cfg.preemption == "swap" and self.kv.swap_out(victim.blocks):
            victim.swapped = True
            step.extra_s += self.swap_time(victim.blocks)
            self.swapped.append(victim)
            return
        self.release(victim)
        victim.target = victim.prompt + victim.generated
        victim.prefilled = 0
        self.waiting.appendleft(victim)

    def reserve_decodes(self, decodes: list[Request], step: Step, lookahead: int | None = None) -> list[Request]:
        """Blocks for one more token (``1 + lookahead`` with speculation) of each decoding
        request, preempting from the most recently admitted ones when blocks run out."""
        if lookahead is None:
            lookahead = self.lookahead
        kv = self.kv
        bs = kv.block_size
        need = 0
        ctx = 0
        for r in decodes:
            c = r.prompt + r.generated
            ctx += c
            n = -(-(c + lookahead) // bs) - r.blocks
            if n > 0:
                need += n
        if need <= kv.free:  # the common case: no preemption, one pass
            step.decode_context = ctx / len(decodes) if decodes else 0.0
            if need:
                for r in decodes:
                    n = -(-(r.prompt + r.generated + lookahead) // bs) - r.blocks
                    if n > 0:
                        kv.free -= n
                        r.blocks += n
            return decodes
        ok: list[Request] = []
        pending = list(decodes)
        while pending:
            r = pending.pop(0)
            if r not in self.running:
                continue
            while not self._grow(r, r.context + lookahead):
                victim = self.running[-1]
                self.preempt(victim, step)
                if victim is r:
                    break
                if victim in pending:
                    pending.remove(victim)
            else:
                ok.append(r)
        return ok

    def swap_in(self, step: Step) -> None:
        while self.swapped and len(self.running) < self.cfg.max_num_seqs:
            r = self.swapped[0]
            if not self.kv.can_admit(r.blocks):
                break
            self.swapped.popleft()
            self.kv.swap_in(r.blocks)
            r.swapped = False
            step.extra_s += self.swap_time(r.blocks)
            self.running.append(r)

    # -- policy -----------------------------------------------------------------------
    def next_step(self, now: float) -> Step | None:
        raise NotImplementedError

    def decoding(self) -> list[Request]:
        return [r for r in self.running if r.prefilled >= r.target]


class ContinuousBatching(Scheduler):
    name = "continuous"

    def next_step(self, now: float) -> Step | None:
        step = Step()
        self.swap_in(step)
        if self.waiting and not self.swapped:
            budget = self.cfg.max_num_batched_tokens
            while self.waiting and len(self.running) < self.cfg.max_num_seqs:
                r = self.waiting[0]
                c = r.target - r.prefilled
                if c > budget or self.start_next(now) is None:
                    break
                if c > 0:  # a request whose KV arrived prefilled (disaggregation) just decodes
                    step.prefills.append((r, c))
                    budget -= c
            if step.prefills:
                return step
        dec = self.decoding()
        if dec:
            step.decodes = self.reserve_decodes(dec, step)
        return step if (step.decodes or step.prefills or step.extra_s) else None


class ChunkedPrefill(Scheduler):
    name = "chunked"

    @classmethod
    def step_tokens(cls, cfg: SchedulerConfig) -> int:
        return max(cfg.chunk_size, 1)  # a step never runs more than one chunk

    def next_step(self, now: float) -> Step | None:
        step = Step()
        self.swap_in(step)
        budget = self.cfg.chunk_size
        dec = self.decoding()
        if dec:
            step.decodes = self.reserve_decodes(dec[:budget], step)
            budget -= len(step.decodes)
        for r in list(self.running):
            if budget <= 0:
                break
            if r.prefilled < r.target:
                c = min(r.target - r.prefilled, budget)
                step.prefills.append((r, c))
                budget -= c
        while budget > 0 and self.waiting and not self.swapped and len(self.running) < self.cfg.max_num_seqs:
            r = self.start_next(now)
            if r is None:
                break
            c = min(r.target - r.prefilled, budget)
            if c > 0:
                step.prefills.append((r, c))
                budget -= c
        return step if (step.decodes or step.prefills or step.extra_s) else None


class StaticBatching(Scheduler):
    """HF ``generate``: one padded batch at a time; every result returns at the batch end."""

    name = "static"

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.batch: list[Request] = []
        self.pos = 0  # steps run of the current batch: 0 = prefill next
        self.shape = (0, 0)

    def has_work(self) -> bool:
        return bool(self.waiting or self.batch)

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.batch)

    def next_step(self, now: float) -> Step | None:
        if not self.batch:
            if not self.waiting:
                return None
            batch: list[Request] = []
            p = o = 0
            while self.waiting and len(batch) < self.cfg.max_num_seqs:
                r = self.waiting[0]
                p2, o2 = max(p, r.prompt), max(o, r.output)
                # a static cache holds every sequence at the padded length
                if self.kv.blocks_for(p2 + o2) * (len(batch) + 1) > self.kv.total:
                    break
                batch.append(self.waiting.popleft())
                p, o = p2, o2
            if not batch:
                return None
            for r in batch:
                r.t_schedule = now
            self.batch, self.pos, self.shape = batch, 0, (p, o)
            self.kv.take(self.kv.blocks_for(p + o) * len(batch))
        p, o = self.shape
        b = len(self.batch)
        if self.pos == 0:
            return Step(prefills=[(r, r.prompt) for r in self.batch], padded=("prefill", b, p))
        return Step(decodes=list(self.batch), padded=("decode", b, p + self.pos - 1))

    def finish_step(self, now: float) -> list[Request]:
        """Advance the batch; at its end every request finishes (returns) at ``now``."""
        p, o = self.shape
        if self.pos == 0:
            for r in self.batch:
                r.prefilled = r.target
                r.generated = 1
                r.t_first = now
        else:
            for r in self.batch:
                if r.generated < r.output:
                    r.generated += 1
        self.pos += 1
        if self.pos >= o:
            done = self.batch
            for r in done:
                r.t_finish = now
            self.kv.give(self.kv.blocks_for(p + o) * len(done))
            self.batch = []
            return done
        return []


SCHEDULERS: dict[str, type[Scheduler]] = {}


def register_scheduler(name: str, cls: type[Scheduler]) -> None:
    """Make ``cls`` available as ``--scheduler name``."""
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise TypeError("a scheduler is a subclass of simulator.serving.schedulers.Scheduler")
    SCHEDULERS[name] = cls


for _n, _c in (("static", StaticBatching), ("continuous", ContinuousBatching), ("vllm", ContinuousBatching),
               ("chunked", ChunkedPrefill), ("sarathi", ChunkedPrefill)):
    register_scheduler(_n, _c)


def scheduler_class(name: str) -> type[Scheduler]:
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise SchedulerError(f"--scheduler {name!r} unknown; choose one of: {', '.join(SCHEDULERS)}") from None
