"""A step model with closed-form times, so queueing tests run fast and mean one thing."""

from __future__ import annotations

from simulator.stepmodel import Memory


class FakeStepModel:
    """dense(T) = base + per_token * T; attention per layer = att * (c * (p + c) or D * L)."""

    layers = 10
    system = None

    def __init__(self, base: float = 0.02, per_token: float = 2e-5, att: float = 1e-9,
                 kv_tokens: int = 200_000, draft: bool = False) -> None:
        self.base, self.per_token, self.att, self.kv_tokens = base, per_token, att, kv_tokens
        self.draft = draft  # a draft model: no memory of its own to speak of

    def dense(self, t: int) -> float:
        return self.base + self.per_token * t

    def attn_prefill(self, c: int, p: int = 0) -> float:
        return self.att * c * (p + c)

    def attn_decode(self, d: int, ctx: float) -> float:
        return self.att * d * ctx

    def step(self, chunks=(), d: int = 0, ctx: float = 0.0) -> float:
        t = sum(c for c, _ in chunks) + d
        if t <= 0:
            return 0.0
        return self.dense(t) + self.layers * (sum(self.attn_prefill(c, p) for c, p in chunks)
                                              + (self.attn_decode(d, ctx) if d else 0.0))

    def decode_time(self, d: int, ctx: float) -> float:
        return self.step((), d, ctx)

    def memory(self, max_batched_tokens: int = 8192, utilization: float = 0.9) -> Memory:
        per = 1000.0
        if self.draft:
            return Memory(capacity=0.0, usable=0.0, weights=0.0, activations=0.0, kv_per_token=0.0)
        return Memory(capacity=1e12, usable=1e12, weights=1e12 - self.kv_tokens * per, activations=0.0,
                      kv_per_token=per)


class ConstantStepModel(FakeStepModel):
    """Every step takes ``s`` seconds, whatever it holds (deterministic service)."""

    def __init__(self, s: float = 0.05, **kw) -> None:
        super().__init__(**kw)
        self.s = s

    def step(self, chunks=(), d: int = 0, ctx: float = 0.0) -> float:
        return self.s
