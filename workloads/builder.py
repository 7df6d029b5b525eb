"""``build``: a model id (or config.json path, or ``pkg.mod:fn``) and a step description
in, a ``WorkloadGraph`` out, from the graph cache when it can be.

Importing this module imports neither torch nor transformers, and neither does a
``build`` answered from the cache: LLM steps come from a parametric family
(``workloads.parametric``: traced once per model, phase, dtype, options and fusion
policy, any batch and length derived), other steps from the exact graph cached for
them (``workloads.graphcache``). Only a miss imports the tracer (``workloads.zoo``)
and traces. A request the fast path cannot fully check (a bad dtype, an unknown
option, a malformed id) always goes to the tracer's path, which raises the same
one-line error it always did; ``pkg.mod:fn`` models run user code and are never cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import graphcache, parametric
from .errors import WorkloadError
from .graph import WorkloadGraph
from .steps import DTYPE_POLICIES, PHASES, check_options, check_step

ZOO_FILE = Path(__file__).with_name("zoo_configs.yaml")


@functools.lru_cache(maxsize=1)
def _zoo() -> dict[str, dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(ZOO_FILE.read_text(), Loader=loader)["models"]


_PARAMS_RE = re.compile(r"^([\w.\-]+)\[(.*)\]$")


def _parse_id(model: str) -> tuple[str, dict[str, str]]:
    """``countsketch[n=4096,d=64]`` -> ("countsketch", {"n": "4096", "d": "64"})."""
    m = _PARAMS_RE.match(model.strip())
    if not m:
        return model.strip(), {}
    params = {}
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        k, sep, v = part.partition("=")
        if not sep:
            raise WorkloadError(f"bad parameter {part!r} in {model!r}; write name=value")
        params[k.strip()] = v.strip()
    return m.group(1), params


def _refuse_options(model: str, what: str, given: frozenset[str], allowed: tuple[str, ...]) -> None:
    extra = sorted(given - set(allowed))
    if extra:
        takes = f"it takes {', '.join('--' + a for a in allowed)} only" if allowed else "it takes no step options"
        raise WorkloadError(f"{model} is {what}: {', '.join('--' + e for e in extra)} do not apply; {takes}")


def build(model: str, phase: str = "decode", batch: int = 1, context: int = 2048, prompt: int = 512,
          dtype: str = "bf16", *, given: Any = (), fusion: str = "none", **params: Any) -> WorkloadGraph:
    """Trace one step of ``model`` into a ``WorkloadGraph``.

    ``model`` is a zoo id (``list_models()``), a zoo id with parameters
    (``sparsestack[n=65536,d=256,k=4096,s=8]``), a path to a Hugging Face ``config.json``
    (its ``model_type`` picks the class), or ``"package.module:function"`` returning
    ``(module, example_inputs)``. LLMs trace ``phase`` (prefill of ``prompt`` tokens or
    decode of one token after ``context`` cached ones) for ``batch`` sequences; vision
    models trace one forward of ``batch`` images (phase ``forward``); sketches take
    ``n, d, k, s`` (see ``workloads.sketches``). LLM options: ``kv="static"`` (serving
    engines' in-place cache, default) or ``"dynamic"`` (HF DynamicCache's concatenation);
    ``logits="last"`` (default, as serving engines do) or ``"all"`` positions.

    ``given`` names the step options the caller's user set explicitly (``phase``,
    ``context``, ...): a model that has no such option (a vision model has no phase or
    context; ``pkg.mod:fn`` fixes its own inputs) refuses them instead of ignoring them.

    ``fusion`` (``workloads.fusion``): ``none`` (the eager kernel stream), ``compile``
    (torch.compile's fused kernels) or ``serving`` (a serving engine's kernels).

    Graphs come from the graph cache when they can (see the module docstring); the
    answer is the same either way.
    """
    from .fusion import policy
    from .precision import parse
    from .quantkernels import choose

    policy(fusion)  # an unknown policy fails before any tracing
    prec = parse(dtype, "dtype")
    choose(prec)  # an unknown or unfit kernel family fails before any tracing too
    given = frozenset(given)
    req = llm_request(model, phase, dtype, params)
    if req is not None:
        length = context if phase == "decode" else prompt
        fam = family(req, fusion, 1)
        if fam is not None and fam.covers(batch, length):
            check_step(phase, batch, context, prompt, fam.max_positions)
            return fam.graph(batch, length, {"batch": batch, "context": context, "prompt": prompt})
    k = _graph_key(model, phase, batch, context, prompt, str(prec), given, fusion, params)

    def make() -> tuple[WorkloadGraph, Any]:
        from .zoo import _build

        g = lower(_build(model, phase, batch, context, prompt, prec, given, dict(params)), prec, fusion)
        return g, g.to_doc()

    if k is None:
        return make()[0]
    return graphcache.get_or_build(k, WorkloadGraph.from_doc, make)


def lower(g: WorkloadGraph, prec: Any, fusion: str) -> WorkloadGraph:
    """A traced step as it runs: fused by ``fusion``, then rewritten for ``prec``'s kernels.

    The precision's kernels replace the traced 16-bit ones after fusion: a fused engine
    launches the same quantised GEMMs, and a dequantise kernel is never fused away.
    """
    from .fusion import fuse
    from .quantize import quantize
    from .quantkernels import choose

    g = fuse(g, fusion)
    fam = choose(prec)
    return quantize(g, prec, fam) if not prec.uniform or fam is not None else g


# -- what a request is -------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMRequest:
    """An LLM step request the fast path has checked: everything but its batch and length."""

    model: str
    source: str  # hash of the zoo entry or of the config.json bytes
    phase: str
    dtype: str
    options: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, Any], ...]


def _source_hash(model: str) -> tuple[str, str] | None:
    """("zoo"|"config", sha256) of what defines ``model``'s architecture, or None."""
    if not isinstance(model, str) or not model.strip():
        return None
    try:
        name, _ = _parse_id(model)
    except WorkloadError:
        return None
    zoo = _zoo()
    if name in zoo:
        e = zoo[name]
        return e["kind"], hashlib.sha256(json.dumps(e, sort_keys=True, default=str).encode()).hexdigest()
    if ":" in name and not name.endswith(".json") and not Path(name).is_file():
        return None  # package.module:function: user code, never cached
    try:
        data = Path(name).read_bytes()
    except OSError:
        return None
    return "config", hashlib.sha256(data).hexdigest()


def llm_request(model: str, phase: str, dtype: Any, params: dict[str, Any]) -> LLMRequest | None:
    """The checked request if ``model`` is a zoo or config.json LLM step the fast path
    may answer; None sends it down the tracer's path (which raises any error).

    Only float steps have families: a quantised precision changes kernels by the number of
    activation rows (a fused kernel up to a batch, a dequantise kernel above; tiles of 16
    or 64 rows), which is not polynomial in the batch, so those steps are cached as exact
    graphs, point by point."""
    if phase not in PHASES or not isinstance(dtype, str) or dtype not in DTYPE_POLICIES:
        return None
    src = _source_hash(model)
    if src is None or src[0] not in ("llm", "config"):
        return None
    try:
        _, id_params = _parse_id(model)
        opts = check_options({**id_params, **params})
    except WorkloadError:
        return None
    return LLMRequest(model, src[1], phase, dtype, tuple(sorted(opts.items())),
                      tuple(sorted({**id_params, **params}.items())))


def _graph_key(model: str, phase: str, batch: int, context: int, prompt: int, dtype: str, given: frozenset[str],
               fusion: str, params: dict[str, Any]) -> dict[str, Any] | None:
    src = _source_hash(model)
    if src is None:
        return None
    return graphcache.key("graph", model=model, source=src[1], phase=phase, batch=batch, context=context,
                          prompt=prompt, dtype=dtype, given=sorted(given), fusion=fusion,
                          params=sorted((str(k), repr(v)) for k, v in params.items()))


# -- families ----------------------------------------------------------------------------------

#: in-process families, by key (None: not parametric)
_FAMILIES: dict[str, parametric.Family | None] = {}
#: in-process traced samples (unfused), by request: one set serves every fusion policy and tp
_SAMPLES: dict[LLMRequest, list[WorkloadGraph]] = {}
_LIMIT = 64


def family_key(req: LLMRequest, fusion: str, tp: int) -> dict[str, Any]:
    return graphcache.key("family", model=req.model, source=req.source, phase=req.phase, dtype=req.dtype,
                          options=list(req.options), fusion=fusion, tp=int(tp), layout=parametric.FORMAT,
                          points=[list(parametric.BATCHES), list(parametric.LENGTHS), list(parametric.CHECK)])


def family(req: LLMRequest, fusion: str, tp: int = 1) -> parametric.Family | None:
    """The step's family for tensor-parallel degree ``tp`` (None if it is not parametric):
    from memory, the disk cache, or traced now."""
    k = family_key(req, fusion, tp)
    mem = json.dumps(k, sort_keys=True, default=str)
    if mem in _FAMILIES:
        return _FAMILIES[mem]

    def decode(body: Any) -> tuple[parametric.Family | None]:
        if body.get("parametric") is False:
            if not isinstance(body.get("reason"), str):
                raise ValueError("bad negative entry")
            return (None,)
        return (parametric.Family.from_doc(body["family"]),)

    def make() -> tuple[tuple[parametric.Family | None], Any]:
        try:
            fam = _fit(req, fusion, tp)
        except parametric.NotParametric as e:
            return (None,), {"parametric": False, "reason": str(e)}
        return (fam,), {"parametric": True, "family": fam.to_doc()}

    (fam,) = graphcache.get_or_build(k, decode, make)
    if len(_FAMILIES) >= _LIMIT:
        _FAMILIES.pop(next(iter(_FAMILIES)))
    _FAMILIES[mem] = fam
    return fam


def _fit(req: LLMRequest, fusion: str, tp: int) -> parametric.Family:
    from .precision import parse
    from .tensor_parallel import shard
    from .zoo import _build, llm_max_positions

    graphs = _SAMPLES.get(req)
    if graphs is None:
        graphs = []
        for b, x in [*parametric.points(), parametric.CHECK]:
            ctx, prompt = (x, 1) if req.phase == "decode" else (0, x)
            try:
                g = _build(req.model, req.phase, b, ctx, prompt, parse(req.dtype), frozenset(), dict(req.params))
            except WorkloadError as e:
                raise parametric.NotParametric(f"cannot trace batch {b}, length {x}: {e}") from None
            if g.meta.get("phase") != req.phase:  # a config.json of a vision model: not an LLM step
                raise parametric.NotParametric(f"{req.model} is not an LLM")
            graphs.append(g)
        if len(_SAMPLES) >= 8:
            _SAMPLES.pop(next(iter(_SAMPLES)))
        _SAMPLES[req] = graphs
    graphs = [lower(g, parse(req.dtype), fusion) for g in graphs]
    if tp > 1:
        graphs = [shard(g, tp) for g in graphs]
    return parametric.fit(req.phase, graphs[:-1], graphs[-1], llm_max_positions(req.model))


def clear_memory() -> None:
    """Forget in-process families and samples (the disk cache stays)."""
    _FAMILIES.clear()
    _SAMPLES.clear()
