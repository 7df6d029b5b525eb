"""The step-time model a serving simulation asks ~10^5 times: one engine step's time for a
mix of prefill chunks and decoding sequences, built from ``simulate`` and cached.

**The decomposition.** A serving engine's step runs every token of the batch through the
same dense kernels (GEMMs, norms, rotary, KV-cache writes, all-reduces: their work
depends only on the number of tokens ``T``), and the attention kernels per sequence kind:
a prefill chunk of ``c`` tokens over ``p`` already-cached ones, and a paged decode kernel
over ``D`` sequences of mean context ``L``. So, for a model of ``N`` alike layers::

    step = F(T) + N * (sum_i a_pre(c_i, p_i) + a_dec(D, L))      T = sum_i c_i + D

- ``F(T)``: the dense time of a ``T``-token step: the simulated step of a ``T``-token
  prefill less its attention kernels' time. It is taken from one- and two-layer traces
  (``workloads.truncated.build_layers``) as ``F1 + (N - 1) (F2 - F1)``, which equals the
  full graph's figure (the layers are replicas of one another; a test checks it).
- ``a_pre(c, p)``: one layer's prefill attention kernel for a chunk: the traced kernel for
  ``p = 0``; for ``p > 0`` the same kernel with ``skv = p + c``, K/V read from the cache and
  the causal pairs ``c p + c (c + 1) / 2`` (flash kernels skip masked tiles), timed in
  place in the one-layer graph.
- ``a_dec(D, L)``: one layer's decode attention kernel, from a traced one-layer decode
  step of ``D`` sequences at context ``L`` (timed in place).

Attention kernels sum per layer, so a mixed step is timed without tracing every mix. A
pure decode step uses ``F`` of ``D`` tokens: the dense work of ``D`` decode rows and of a
``D``-token prefill differ only in the logits (one row against ``D``), under 0.5% on the
zoo's LLMs; the tests compare mixed, prefill and decode steps with direct simulation.

**Grids and interpolation.** Each term is evaluated at grid points on demand and cached.
The token grid is every count to 16, multiples of 16 to 4096, of 32 to 8192, then of
128. GEMM time has wave-quantisation steps just after multiples of 16 tokens (the
library's tiles are 16 to 256 rows), so ``F`` between grid points ``g - q`` and ``g`` is
interpolated linearly between ``g - q + 1`` and ``g``, where it is smooth; ``a_pre``
takes the chunk rounded up to the grid (as a CUDA-graph engine pads a batch to the next
captured size). Contexts and decode batch sizes are interpolated linearly between grid points
(decode attention is ``fixed + k D L`` to first order, which bilinear interpolation
reproduces). Error against direct simulation on a held-out grid: see
``tests/simulator/test_stepmodel.py`` and the README.

Under ``launch="eager"`` a host-bound step hides kernels behind dispatch; the
decomposition then adds attention kernels a host-bound step partly hides (an upper
bound); serving engines run CUDA graphs (``launch="graph"``, the default here).

Why one long module: most of it is this docstring and ``StepModel``, whose terms share
one grid and one cache; the two graph builders at the end exist only for it.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hw_models.spec import SystemSpec

from .footprint import DTYPE_BYTES, GIB, kv_dtype, peak_activation_bytes, weight_bytes

#: bump when the model's definition changes, so old disk caches are not read
VERSION = 1


@functools.lru_cache(maxsize=1)
def pricing_code_hash() -> str:
    """The code a cached step time depends on: the graphs' (``workloads``), the cost model
    and engine (``simulator``) and the physics (``hw_models``); an edit to any gives new
    cache keys, so a changed model never answers from an old one's times."""
    from workloads.graphcache import code_hash, source_hash

    root = Path(__file__).resolve().parent
    return code_hash() + source_hash(root, root.parent / "hw_models")


#: decode batch sizes and contexts where a_dec is evaluated (interpolated between)
BATCH_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024,
              1536, 2048, 3072, 4096)
CONTEXT_GRID = (0, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
                12288, 16384, 24576, 32768, 49152, 65536, 98304, 131072)


class StepModelError(ValueError):
    """Bad step-model request (one line for the user)."""

    user_facing = True


def token_grid_up(t: int) -> int:
    """The token-grid point a count of ``t`` tokens is timed at (``t`` rounded up)."""
    t = int(t)
    if t <= 16:
        return max(t, 1)
    for limit, q in ((4096, 16), (8192, 32)):
        if t <= limit:
            return -(-t // q) * q
    return -(-t // 128) * 128


def _quantum(t: int) -> int:
    """Spacing of the token grid at grid point ``t``."""
    return 16 if t <= 4096 else (32 if t <= 8192 else 128)


def _bracket(grid: tuple[int, ...], x: float) -> tuple[int, int, float]:
    """Grid neighbours (lo, hi) of ``x`` and the weight of hi; beyond the grid, extrapolate."""
    if x <= grid[0]:
        return grid[0], grid[1], (x - grid[0]) / (grid[1] - grid[0])
    i = bisect.bisect_left(grid, x)
    if i >= len(grid):
        i = len(grid) - 1
    lo, hi = grid[i - 1], grid[i]
    return lo, hi, (x - lo) / (hi - lo)


@dataclass(frozen=True)
class Memory:
    """Per device of one replica (a ``tp``-way group): what the KV cache may use."""

    capacity: float  # device main memory
    usable: float  # capacity x memory utilisation
    weights: float
    activations: float  # peak live activations of a max_batched_tokens step
    kv_per_token: float  # KV-cache bytes one token holds on this device

    @property
    def kv_capacity(self) -> float:
        return self.usable - self.weights - self.activations

    def describe(self) -> dict[str, float]:
        return {"capacity_gib": self.capacity / GIB, "usable_gib": self.usable / GIB,
                "weights_gib": self.weights / GIB, "activations_gib": self.activations / GIB,
                "kv_capacity_gib": self.kv_capacity / GIB, "kv_bytes_per_token": self.kv_per_token}


class StepModel:
    """Step times of ``model`` on one replica (``tp`` devices of ``system``).

    ``step(chunks, decode_batch, decode_context)`` is the engine step of prefill chunks
    ``[(tokens, prefix), ...]`` and ``decode_batch`` decoding sequences of mean context
    ``decode_context``. Values are cached in memory and, with ``cache_dir`` (default
    ``$ROOFSIM_CACHE/steps`` or ``~/.cache/roofsim/steps``; ``cache_dir=False`` for none),
    on disk per (model, spec, tp, dtype, fusion, launch, ``pricing_code_hash()``).
    """

    def __init__(self, model: str, system: SystemSpec | str, *, tp: int = 1, dtype: str = "bf16",
                 fusion: str = "serving", launch: str = "graph", cache_dir: Any = None,
                 build_layers: Any = None, simulate_fn: Any = None) -> None:
        from hw_models.catalog import load
        from workloads.fusion import policy
        from workloads.tensor_parallel import check_degree
        from workloads.truncated import build_layers as _bl
        from workloads.truncated import llm_config, uniform_layers

        if launch not in ("eager", "graph"):
            raise StepModelError(f"--launch must be eager or graph, got {launch!r}")
        policy(fusion)
        self.model, self.tp, self.dtype, self.fusion, self.launch = model, int(tp), dtype, fusion, launch
        self.system = load(system)
        if self.tp < 1:
            raise StepModelError(f"--tp must be >= 1, got {tp}")
        if self.tp > self.system.num_devices:
            raise StepModelError(f"--tp {self.tp} exceeds the {self.system.num_devices} device(s) of {self.system.id}")
        cfg, info, _ = llm_config(model)
        self.info = info
        self.layers = int(info["num_layers"])
        self.uniform = uniform_layers(cfg)
        self._build = build_layers or _bl
        if simulate_fn is None:
            from . import simulate as simulate_fn
        self._simulate = simulate_fn
        probe = self._graph(1, "decode", batch=1, context=1)
        check_degree(probe, self.tp)
        self._probe = probe
        self._lock = threading.Lock()
        self._dense: dict[int, float] = {}
        self._pre: dict[tuple[int, int], float] = {}
        self._dec: dict[tuple[int, int], float] = {}
        self._brackets: dict[int, tuple[int, int, float]] = {}
        self._dirty = False
        self._cache_path = self._disk_path(cache_dir)
        self._load()

    # -- identity and disk cache -------------------------------------------------------
    def key(self) -> str:
        spec = self.system.model_dump_json()
        body = json.dumps([VERSION, self.model, self._model_digest(), spec, self.tp, self.dtype, self.fusion,
                           self.launch, pricing_code_hash()])
        return hashlib.sha1(body.encode()).hexdigest()[:20]

    def _model_digest(self) -> str:
        p = Path(self.model)
        if p.is_file():
            return hashlib.sha1(p.read_bytes()).hexdigest()
        return ""

    def _disk_path(self, cache_dir: Any) -> Path | None:
        if cache_dir is False:
            return None
        if cache_dir is None:
            root = os.environ.get("ROOFSIM_CACHE")
            base = Path(root) if root else Path.home() / ".cache" / "roofsim"
            cache_dir = base / "steps"
        return Path(cache_dir) / f"{self.key()}.json"

    def _load(self) -> None:
        p = self._cache_path
        if p is None or not p.is_file():
            return
        try:
            doc = json.loads(p.read_text())
            self._dense = {int(k): float(v) for k, v in doc["dense"].items()}
            self._pre = {tuple(map(int, k.split(","))): float(v) for k, v in doc["pre"].items()}
            self._dec = {tuple(map(int, k.split(","))): float(v) for k, v in doc["dec"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            self._dense, self._pre, self._dec = {}, {}, {}  # a torn or old cache is rebuilt

    def save(self) -> None:
        """Write the values computed so far to the disk cache (atomically)."""
        p = self._cache_path
        if p is None or not self._dirty:
            return
        doc = {"version": VERSION, "model": self.model, "hardware": self.system.id, "tp": self.tp,
               "dense": {str(k): v for k, v in self._dense.items()},
               "pre": {f"{a},{b}": v for (a, b), v in self._pre.items()},
               "dec": {f"{a},{b}": v for (a, b), v in self._dec.items()}}
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, p)
            self._dirty = False
        except OSError:
            pass  # a cache is an optimisation: an unwritable folder costs time, not results

    # -- graphs -------------------------------------------------------------------------
    def _graph(self, layers: int, phase: str, *, batch: int = 1, context: int = 0, prompt: int = 1):
        return self._build(self.model, layers, phase=phase, batch=batch, context=context, prompt=prompt,
                           dtype=self.dtype, fusion=self.fusion)

    def _run(self, graph) -> tuple[float, float]:
        """(step time, attention kernels' time) of a graph on one replica."""
        r = self._simulate(graph, self.system, launch=self.launch, tp=self.tp)
        ops = r.ops
        att = float(ops.loc[ops["kind"] == "attention", "duration_s"].sum())
        return float(r.step_time_s), att

    def _layers_eval(self, make) -> tuple[float, float]:
        """(dense time of the whole model, one layer's attention time) from ``make(layers)``."""
        if not self.uniform:  # layers differ: trace them all (slow, exact)
            s, a = self._run(make(self.layers))
            return s - a, a / self.layers
        s1, a1 = self._run(make(1))
        if self.layers == 1:
            return s1 - a1, a1
        s2, a2 = self._run(make(2))
        f1, f2 = s1 - a1, s2 - a2
        return f1 + (self.layers - 1) * (f2 - f1), a2 - a1

    # -- grid values ----------------------------------------------------------------------
    def _dense_at(self, t: int) -> float:
        v = self._dense.get(t)
        if v is None:
            f, a = self._layers_eval(lambda n: self._graph(n, "prefill", prompt=t))
            self._dense[t] = v = f
            self._pre.setdefault((t, 0), a)
            self._dirty = True
        return v

    def _pre_at(self, c: int, p: int) -> float:
        v = self._pre.get((c, p))
        if v is None:
            if p == 0:
                self._dense_at(c)
                return self._pre[(c, 0)]
            g = chunk_graph(self._graph(1, "prefill", prompt=c), p)
            s, a = self._run(g)
            self._pre[(c, p)] = v = a
            self._dirty = True
        return v

    def _dec_at(self, d: int, ctx: int) -> float:
        v = self._dec.get((d, ctx))
        if v is None:
            s, a = self._run(self._graph(1, "decode", batch=d, context=ctx))
            self._dec[(d, ctx)] = v = a
            self._dirty = True
        return v

    # -- the model ----------------------------------------------------------------------
    def dense(self, tokens: int) -> float:
        """Dense (non-attention) time of a step of ``tokens`` tokens, whole model."""
        if tokens <= 16:
            v = self._dense.get(tokens)
            if v is None:
                with self._lock:
                    v = self._dense_at(tokens)
            return v
        hi = token_grid_up(tokens)
        dense = self._dense
        b = dense.get(hi)
        if b is None:
            with self._lock:
                b = self._dense_at(hi)
        if hi == tokens:
            return b
        # wave steps fall just after a multiple of 16: the interval's first token and its
        # last bound the smooth part between them
        lo = hi - _quantum(hi) + 1
        a = dense.get(lo)
        if a is None:
            with self._lock:
                a = self._dense_at(lo)
        return a + (b - a) * (tokens - lo) / (hi - lo)

    def attn_prefill(self, tokens: int, prefix: int = 0) -> float:
        """One layer's attention for a chunk of ``tokens`` after ``prefix`` cached tokens."""
        c = token_grid_up(tokens)
        if prefix <= 0:
            with self._lock:
                return self._pre_at(c, 0)
        lo, hi, w = _bracket(CONTEXT_GRID, prefix)
        with self._lock:
            a, b = self._pre_at(c, lo), self._pre_at(c, hi)
        return a + (b - a) * w

    def attn_decode(self, batch: int, context: float) -> float:
        """One layer's decode attention for ``batch`` sequences of mean ``context``."""
        if batch <= 0:
            return 0.0
        br = self._brackets.get(batch)
        if br is None:
            br = self._brackets[batch] = _bracket(BATCH_GRID, batch)
        d0, d1, wd = br
        c0, c1, wc = _bracket(CONTEXT_GRID, context)
        dec = self._dec
        v00, v01, v10, v11 = dec.get((d0, c0)), dec.get((d0, c1)), dec.get((d1, c0)), dec.get((d1, c1))
        if v00 is None or v01 is None or v10 is None or v11 is None:
            with self._lock:
                v00, v01 = self._dec_at(d0, c0), self._dec_at(d0, c1)
                v10, v11 = self._dec_at(d1, c0), self._dec_at(d1, c1)
        lo = v00 + (v01 - v00) * wc
        return lo + (v10 + (v11 - v10) * wc - lo) * wd

    def step(self, chunks: list[tuple[int, int]] | tuple = (), decode_batch: int = 0,
             decode_context: float = 0.0) -> float:
        """Seconds of one engine step: prefill ``chunks`` [(tokens, prefix)] and
        ``decode_batch`` sequences at mean context ``decode_context``."""
        if not chunks:
            if decode_batch <= 0:
                return 0.0
            return self.dense(decode_batch) + self.layers * self.attn_decode(decode_batch, decode_context)
        tokens = sum(c for c, _ in chunks) + decode_batch
        att = sum(self.attn_prefill(c, p) for c, p in chunks)
        if decode_batch:
            att += self.attn_decode(decode_batch, decode_context)
        return self.dense(tokens) + self.layers * att

    def prefill_time(self, tokens: int, prefix: int = 0) -> float:
        return self.step([(tokens, prefix)])

    def decode_time(self, batch: int, context: float) -> float:
        return self.step((), batch, context)

    # -- memory -------------------------------------------------------------------------
    def memory(self, max_batched_tokens: int = 8192, utilization: float = 0.9) -> Memory:
        """Per-device memory of one replica: the KV cache gets capacity x ``utilization``
        less the weights and the peak activations of a ``max_batched_tokens`` step."""
        sysm = self.system.device.main_memory
        cap = float(sysm.capacity.value)
        w, _ = weight_bytes(self._probe, self.tp)
        t = int(max_batched_tokens)
        t0 = min(t, int(self.info.get("max_positions") or t))
        # live activations grow with the tokens of a step; a step longer than one sequence
        # may be (several prompts) is scaled from the longest one
        act = peak_activation_bytes(self._graph(1, "prefill", prompt=t0)) * t / t0
        cfg = self.info
        shard = self.tp
        heads = math.ceil(int(cfg["kv_heads"]) / shard)
        per_tok = 2.0 * self.layers * heads * int(cfg["head_dim"]) * DTYPE_BYTES[kv_dtype(self._probe.meta)]
        return Memory(capacity=cap, usable=cap * float(utilization), weights=w, activations=act,
                      kv_per_token=per_tok)


def chunk_graph(graph, prefix: int):
    """A copy of a (one-layer) prefill graph of ``c`` tokens whose attention kernels attend
    ``prefix`` already-cached tokens as well: ``skv = prefix + c``, K and V read from the
    KV cache (``prefix + c`` positions), and the causal pairs ``c * prefix + c (c + 1) / 2``
    counted in the FLOPs (``causal`` is then cleared: the count already skips the masked
    tiles, as flash kernels do)."""
    from workloads.graph import WorkloadGraph
    from workloads.op import Access, Op
    from workloads.payloads import payload
    from workloads.rules import attention_flops

    out = WorkloadGraph(meta={**graph.meta, "prefix": int(prefix)})
    ops = []
    for op in graph.ops:
        if op.kind != "attention":
            ops.append(op)
            continue
        att = payload(op)
        c = int(att.sq)
        skv0 = int(att.skv)
        skv = int(prefix) + c
        pairs = c * int(prefix) + c * (c + 1) / 2.0
        full = attention_flops(replace(att, skv=skv))
        flops = {k: full * pairs / (c * skv) for k in op.flops}
        a = {**op.attrs, **replace(att, skv=skv, causal=False).attrs(), "prefix": int(prefix)}
        reads = []
        for i, r in enumerate(op.reads):
            if i in (1, 2):  # key, value: the whole cache of prefix + c positions
                reads.append(Access(r.tensor, int(r.bytes * skv / skv0), "kv_cache"))
            else:
                reads.append(Access(r.tensor, r.bytes, r.role))
        ops.append(Op(id=op.id, name=op.name, kind=op.kind, dtype=op.dtype, flops=flops, reads=reads,
                      writes=[Access(w.tensor, w.bytes, w.role) for w in op.writes], launches=op.launches,
                      shapes=[list(s) for s in op.shapes], module=op.module, attrs=a, device=op.device,
                      stream=op.stream))
    out.extend(ops)
    return out


def mixed_graph(model: str, chunks: list[tuple[int, int]], decode_batch: int, decode_context: int, *,
                dtype: str = "bf16", fusion: str = "serving", build_layers: Any = None):
    """The whole model's graph of one mixed step, for checking the decomposition directly:
    a prefill graph of ``T = sum(chunks) + decode_batch`` tokens (every layer traced) whose
    attention kernel in each layer is replaced by the chunk kernels (``chunk_graph``) and the
    decode kernel of ``decode_batch`` sequences at ``decode_context`` (from a traced decode
    step), reading and writing the replaced kernel's tensors."""
    from workloads import build
    from workloads.graph import WorkloadGraph
    from workloads.op import Access, Op
    from workloads.truncated import build_layers as _bl
    from workloads.truncated import llm_config

    bl = build_layers or _bl
    layers = int(llm_config(model)[1]["num_layers"])
    tokens = sum(c for c, _ in chunks) + decode_batch
    if build_layers is None:  # the zoo's full build (layers replicated: the same ops, faster)
        base = build(model, phase="prefill", prompt=tokens, dtype=dtype, fusion=fusion)
    else:
        base = bl(model, layers, phase="prefill", prompt=tokens, dtype=dtype, fusion=fusion)
    subs = []
    for c, p in chunks:
        g = bl(model, 1, phase="prefill", prompt=c, dtype=dtype, fusion=fusion)
        g = chunk_graph(g, p) if p else g
        subs.append(next(op for op in g.ops if op.kind == "attention"))
    if decode_batch:
        g = bl(model, 1, phase="decode", batch=decode_batch, context=decode_context, dtype=dtype, fusion=fusion)
        subs.append(next(op for op in g.ops if op.kind == "attention"))
    out = WorkloadGraph(meta={**base.meta, "mixed": {"chunks": list(chunks), "decode_batch": decode_batch,
                                                     "decode_context": decode_context}})
    nid = max(op.id for op in base.ops) + 1
    ops = []
    for op in base.ops:
        if op.kind != "attention":
            ops.append(op)
            continue
        for s in subs:
            reads = [Access(op.reads[i].tensor if i < len(op.reads) else r.tensor, r.bytes, r.role)
                     for i, r in enumerate(s.reads)]
            ops.append(Op(id=nid, name=s.name, kind=s.kind, dtype=s.dtype, flops=dict(s.flops), reads=reads,
                          writes=[Access(op.writes[0].tensor, w.bytes, w.role) for w in s.writes],
                          launches=s.launches, shapes=[list(x) for x in s.shapes], module=op.module,
                          attrs=dict(s.attrs), device=op.device, stream=op.stream))
            nid += 1
    out.extend(ops)
    return out
