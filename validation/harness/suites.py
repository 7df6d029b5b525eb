"""The measurement suites: which cases a run measures, per mode (tiny for tests, quick, full) and device."""

from __future__ import annotations

from .cases import Case

MODES = ("tiny", "quick", "full")


def _bandwidth(sizes: list[int], dtype: str = "fp32") -> list[Case]:
    out = []
    for nbytes in sizes:
        n = max(nbytes // 4, 1)
        out.append(Case("bandwidth", "read", {"n": n}, dtype))
        out.append(Case("bandwidth", "copy", {"n": max(n // 2, 1)}, dtype))
    return out


def _matmuls(shapes: list[tuple[int, int, int]], dtype: str) -> list[Case]:
    return [Case("matmul", "mm", {"m": m, "n": n, "k": k}, dtype) for m, n, k in shapes]


def _gemvs(shapes: list[tuple[int, int]], dtype: str, cold: bool) -> list[Case]:
    p = {"cold": True} if cold else {}
    return [Case("gemv", "linear", {"n": n, "k": k}, dtype, p) for n, k in shapes]


def _vector(ops: list[str], sizes: list[int], dtype: str = "fp32") -> list[Case]:
    return [Case("elementwise", op, {"n": n}, dtype) for op in ops for n in sizes]


def _rows(family: str, ops: list[str], shapes: list[tuple[int, int]], dtype: str = "fp32") -> list[Case]:
    return [Case(family, op, {"rows": r, "cols": c}, dtype) for op in ops for r, c in shapes]


def _attention(items: list[tuple[int, int, int, bool]], dtype: str = "fp32", h: int = 8, d: int = 64) -> list[Case]:
    return [
        Case("attention", "sdpa", {"b": 1, "h": h, "sq": sq, "skv": skv, "d": d}, dtype, {"causal": causal})
        for sq, skv, _, causal in items
    ]


def _scatter(updates: int, targets: int, width: int, distincts: list[int], dtype: str = "fp32") -> list[Case]:
    return [
        Case("scatter", "index_add", {"updates": updates, "targets": targets, "width": width, "distinct": d}, dtype)
        for d in distincts
    ]


def _dispatch(ops: list[str], n: int = 8) -> list[Case]:
    return [Case("dispatch", op, {"n": n}) for op in ops]


def _models(items: list[tuple[str, str, int]], dtype: str = "fp32") -> list[Case]:
    out = []
    for model, phase, tokens in items:
        shape = {"batch": 1, "context" if phase == "decode" else "prompt": tokens}
        out.append(Case("model", phase, shape, dtype, {"model": model, "phase": phase}))
    return out


def _geom(lo: int, hi: int, step: float) -> list[int]:
    """Sizes from ``lo`` to ``hi`` a factor ``step`` apart (rounded to multiples of 256)."""
    out, x = [], float(lo)
    while x <= hi * 1.0001:
        out.append(max(256, int(round(x / 256)) * 256))
        x *= step
    return sorted(set(out))


#: weight shapes (N, K) of a 7-8B decoder layer: attention projections, MLP up, MLP down
_LLM_WEIGHTS = [(4096, 4096), (14336, 4096), (4096, 14336)]


def _tensor_core_cases(quick: bool) -> list[Case]:
    """The kernels LLM inference spends its GPU time in, at the sizes it runs them: bf16
    GEMMs large enough to leave the host's shadow (the square sizes above stay host-bound
    on a fast GPU), decode GEMVs over weights larger than L2, and flash attention with
    Llama's head shape. Without them a fit keeps the datasheet's tensor-core rates."""
    square = [2048, 4096, 8192] if quick else [2048, 3072, 4096, 6144, 8192]
    rows = [64, 1024] if quick else [16, 64, 256, 1024, 4096]
    weights = _LLM_WEIGHTS[:1] if quick else _LLM_WEIGHTS
    shapes = [(s, s, s) for s in square] + [(m, n, k) for m in rows for n, k in weights]
    out = _matmuls(list(dict.fromkeys(shapes)), "bf16")
    out += _gemvs(weights + ([] if quick else [(8192, 8192)]), "bf16", cold=False)
    prefill = [512, 2048] if quick else [256, 512, 1024, 2048, 4096]
    decode = [2048, 8192] if quick else [512, 2048, 8192, 32768]
    out += _attention([(s, s, 0, True) for s in prefill] + [(1, s, 0, False) for s in decode], "bf16", h=32, d=128)
    return out


def cases(mode: str, device: str) -> list[Case]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    cuda = device.startswith("cuda")
    K, M = 1024, 1024 * 1024
    if mode == "tiny":
        out = (
            _bandwidth([16 * K, 256 * K])
            + _matmuls([(32, 32, 32), (64, 48, 40)], "fp32")
            + _gemvs([(256, 128)], "fp32", cold=False)
            + _vector(["add", "gelu"], [4096])
            + _rows("reduction", ["sum"], [(16, 256)])
            + _rows("norm", ["layer_norm", "rms_norm"], [(16, 256)])
            + _rows("softmax", ["softmax"], [(16, 256)])
            + _attention([(16, 16, 0, True), (1, 32, 0, False)], h=2, d=16)
            + _scatter(256, 256, 8, [256, 1])
            + _dispatch(["add", "relu"])
        )
        if cuda:
            out += [Case("graph", "add_chain", {"n": 8, "nodes": 16})]
            out += [Case("transfer", "copy", {"n": 4096}, "fp32", {"pinned": p, "direction": "h2d"}) for p in (False, True)]
        return out
    quick = mode == "quick"
    # full mode: sizes dense enough that every decade holds several rows of each op, so a
    # whole decade can be held out (validation.holdout) and the rest still pins the curve
    bw = [32 * K, 256 * K, 2 * M, 16 * M, 128 * M] if quick else _geom(16 * K, 512 * M, 2)
    if cuda:
        bw = [256 * K, 4 * M, 32 * M, 256 * M, 1024 * M] if quick else [
            64 * K, 256 * K, 1 * M, 4 * M, 16 * M, 32 * M, 64 * M, 256 * M, 1024 * M, 2048 * M
        ]
    sq = [64, 128, 256, 512, 1024] if quick else [32, 48, 64, 96, 128, 192, 256, 320, 384, 512, 640, 768, 1024,
                                                   1280, 1536, 2048]
    if cuda:
        sq = [s * 4 for s in sq]
    mm_fp32 = [(s, s, s) for s in sq] + ([(16, 1024, 1024), (128, 2048, 512)] if quick else [
        (8, 1024, 1024), (16, 2048, 2048), (32, 896, 896), (64, 1024, 4096), (64, 768, 3072), (128, 4096, 1024),
        (128, 896, 4864), (256, 768, 3072), (256, 3072, 768), (512, 3072, 768), (512, 896, 896), (1024, 256, 1024),
        (1024, 768, 768), (2048, 64, 2048),
    ])
    mm_bf16 = [(s, s, s) for s in sq[:3 if quick else 7]]
    gemv = [(1024, 1024), (4096, 1024), (4096, 4096)] if quick else [
        (256, 256), (512, 512), (768, 768), (1024, 1024), (2048, 1024), (4096, 1024), (1024, 4096), (2304, 768),
        (768, 3072), (4096, 4096), (8192, 2048), (8192, 4096)
    ]
    # ops that allocate their output stay at or under 4 MiB of output on the CPU: above that the
    # allocator hands back fresh pages and first-touch page faults dominate (a term the cost
    # model does not have yet; the report measures it separately)
    ew_sizes = [4 * K, 64 * K, 1 * M] if quick else _geom(1 * K, 1 * M, 2 ** 0.5)
    if cuda:
        ew_sizes = [4 * K, 256 * K, 4 * M] if quick else [1 * K, 8 * K, 32 * K, 128 * K, 512 * K, 2 * M, 8 * M, 32 * M]
    ew_ops = ["add", "gelu"] if quick else ["add", "mul", "gelu", "silu", "exp"]
    row_shapes = [(64, 1024), (256, 1024), (1024, 1024)] if quick else [
        (1, 768), (4, 768), (16, 768), (32, 896), (64, 896), (128, 896), (256, 1024), (384, 1024), (512, 1024),
        (768, 1024), (1024, 1024), (64, 4096), (8, 32000), (32, 32000)
    ]
    if cuda:
        row_shapes = [(64, 1024), (1024, 1024), (4096, 4096)] if quick else [
            (1, 768), (16, 768), (128, 896), (512, 1024), (2048, 2048), (4096, 4096), (8192, 4096), (32, 32000)
        ]
    att = [(s, s, 0, True) for s in ([128, 512] if quick else [32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536,
                                                              2048])]
    att += [(1, s, 0, False) for s in ([256, 2048] if quick else [64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
                                                                  4096, 6144, 8192])]
    scatter_n = 1 << (14 if quick else 16)
    distinct = [scatter_n, scatter_n // 16, 16, 1] if quick else [
        scatter_n, scatter_n // 4, scatter_n // 16, scatter_n // 64, 256, 16, 4, 1
    ]
    out = (
        _bandwidth(bw)
        + _matmuls(mm_fp32, "fp32")
        + _matmuls(mm_bf16, "bf16")
        + _gemvs(gemv, "fp32", cold=False)
        + _gemvs(gemv[-2:] if quick else gemv, "fp32", cold=True)
        + _gemvs(gemv[:2] if quick else gemv[:5], "bf16", cold=False)
        + _vector(ew_ops, ew_sizes)
        + _vector(["add"], ew_sizes[1:], "bf16")
        + _rows("reduction", ["sum"] if quick else ["sum", "amax"], row_shapes)
        + _rows("norm", ["layer_norm", "rms_norm"], row_shapes)
        + _rows("softmax", ["softmax"], row_shapes)
        + _attention(att)
        + _scatter(scatter_n, scatter_n, 64, distinct)
        + _dispatch(["add", "mul", "relu", "neg"] if not quick else ["add", "relu"])
    )
    if cuda:
        out += _tensor_core_cases(quick)
        out += [Case("graph", "add_chain", {"n": 256, "nodes": k}) for k in ([16, 128] if quick else [8, 32, 128, 512])]
        for n in [64 * K, 16 * M] if quick else [4 * K, 64 * K, 1 * M, 16 * M, 64 * M]:
            for pinned in (False, True):
                for d in ("h2d", "d2h"):
                    out.append(Case("transfer", "copy", {"n": n // 4}, "fp32", {"pinned": pinned, "direction": d}))
    models = [("gpt2", "decode", 128), ("gpt2", "prefill", 64)]
    if not quick:
        models += [("gpt2", "decode", 512), ("gpt2", "prefill", 256), ("qwen2.5-0.5b", "decode", 128),
                   ("qwen2.5-0.5b", "prefill", 64)]
    out += _models(models, "bf16" if cuda else "fp32")
    arch = ["gpt2"] if quick else ["gpt2", "qwen2.5-0.5b"]
    out += [Case("framework", "decode", {"batch": 1, "context": 128}, "fp32", {"model": m, "phase": "decode"})
            for m in arch]
    return out
