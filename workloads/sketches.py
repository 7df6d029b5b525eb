"""Sparse sketches built on ``index_add_``: sketch an ``n x d`` matrix A to ``k x d`` as S·A.

Parameters (``build("sparsestack", n=..., d=..., k=..., s=..., seed=...)`` or
``"sparsestack[n=65536,d=1024,k=4096,s=8]"``):

- ``n``: rows of A; ``d``: columns of A; ``k``: rows of the sketch;
- ``s``: nonzeros per column of S (CountSketch is ``s = 1``). SparseStack stacks ``s``
  CountSketches of ``k/s`` rows each, so a column's nonzeros land in distinct rows;
  values are random signs scaled by 1/sqrt(s);
- ``seed``: the hash functions' seed (default 0).

The work is one broadcast sign multiply (A read once, n·s·d written) and one accumulating scatter of ``n·s`` rows of
``d`` values: ``updates = n·s·d``. The row hashes are drawn on the CPU with the seed, so the
distinct destination rows are counted exactly and declared to the tracer
(``distinct_targets = distinct rows × d``), while the tensors themselves stay on meta.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .errors import WorkloadError
from .graph import WorkloadGraph
from .phases import FLOAT_DTYPES, dtype_spec
from .tracer import trace


def sketch_rows(n: int, k: int, s: int, seed: int = 0) -> torch.Tensor:
    """Destination row of each of the ``n·s`` nonzeros: block j of ``k/s`` rows for copy j."""
    g = torch.Generator().manual_seed(seed)
    block = k // s
    h = torch.randint(0, block, (s, n), generator=g)
    return (h + torch.arange(s)[:, None] * block).reshape(-1)


class SparseSketch(torch.nn.Module):
    def __init__(self, n: int, d: int, k: int, s: int, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: str = "meta") -> None:
        super().__init__()
        rows = sketch_rows(n, k, s, seed)
        self.n, self.d, self.k, self.s = n, d, k, s
        #: distinct destination addresses of the scatter, declared for meta tracing
        self.roofsim_distinct_targets = int(torch.unique(rows).numel()) * d
        self.register_buffer("rows", rows.to(device))
        signs = (torch.randint(0, 2, (s * n, 1), generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1)
        self.register_buffer("signs", (signs / math.sqrt(s)).to(dtype=dtype, device=device))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        # one broadcast multiply makes the n*s signed rows; the scatter adds them into S·A
        src = (a.unsqueeze(0) * self.signs.view(self.s, self.n, 1)).view(self.s * self.n, self.d)
        out = torch.zeros(self.k, self.d, dtype=a.dtype, device=a.device)
        return out.index_add_(0, self.rows, src)


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    v = params.pop(name, default)
    try:
        iv = int(float(v))
    except (TypeError, ValueError):
        raise WorkloadError(f"sketch parameter {name} must be an integer, got {v!r}") from None
    if iv < 1 and name != "seed":
        raise WorkloadError(f"sketch parameter {name} must be >= 1, got {v!r}")
    return iv


def build_sketch(name: str, entry: dict[str, Any], *, dtype: str, meta: dict[str, Any], **params: Any
                 ) -> WorkloadGraph:
    spec = dtype_spec(dtype, FLOAT_DTYPES)
    defaults = entry.get("defaults", {})
    params = dict(params)
    n, d, k = (_int_param(params, x, defaults[x]) for x in ("n", "d", "k"))
    s = _int_param(params, "s", defaults.get("s", 1))
    seed = _int_param(params, "seed", 0)
    if params:
        raise WorkloadError(f"{name}: unknown parameter(s) {', '.join(params)}; use n, d, k, s, seed")
    if name == "countsketch" and s != 1:
        raise WorkloadError("countsketch has s = 1; use sparsestack for s > 1")
    if s > k:
        raise WorkloadError(f"s ({s}) must not exceed k ({k})")
    if n * s > 50_000_000:
        raise WorkloadError(f"n*s = {n * s} is too large to hash (limit 5e7)")
    mod = SparseSketch(n, d, k, s, seed, spec.torch_dtype)
    a = torch.empty(n, d, dtype=spec.torch_dtype, device="meta")
    meta = {**meta, "phase": "forward", "sketch": {"n": n, "d": d, "k": k, "s": s, "seed": seed}}
    return trace(mod, (a,), meta=meta)
