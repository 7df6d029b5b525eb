"""Precision of one model step: the number format of each tensor class, as one record.

Weights, activations and the KV cache are set separately (as LLM-Viewer and GenZ let
users do), because serving stacks quantise them separately: int4 weights with 16-bit
activations (AWQ/GPTQ, ``w4a16``), fp8 weights and activations on Hopper/Ada (``fp8``),
an fp8 KV cache under any of them (``kv8``).

Spelling (``parse``), one string for the command line and for the published cases:

* an alias: ``fp32``, ``bf16``, ``fp16`` (every tensor in that format), ``fp8`` (fp8
  weights and activations, 16-bit KV cache), ``int8`` / ``int4`` (weight-only:
  ``w8a16`` / ``w4a16``), the ``--dtype`` values roofsim always took;
* ``w<W>a<A>[kv<K>][g<G>]``: bits or a format name per class, e.g. ``w4a16kv8``,
  ``w8a8``, ``wfp8a16``, ``wnf4a16g64``. Bits map to formats by ``BITS``: weights 4 ->
  int4, 8 -> int8; activations 8 -> int8; KV 8 -> fp8 (the 8-bit cache vLLM and
  TensorRT-LLM store), 4 -> int4; 16 -> bf16 (``fp16`` by name). ``g<G>`` is the group
  size of group-wise integer weights (one scale, and a zero where the kernel keeps one,
  per ``G`` weights along the input dimension); ``g0`` means one group per output channel;
* a ``+<kernel>`` suffix names the quantised kernel family (``workloads.quantkernels``):
  ``w4a16+marlin``.

Formats, by how many bytes an element takes (``FORMAT_BYTES``) and what kind of number
it is; ``nf4`` is bitsandbytes' 4-bit normal-float code (a 4-bit index into a 16-entry
table, scaled per block like int4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import WorkloadError

#: bytes per element of each format
FORMAT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "nf4": 0.5}
FLOATS = ("fp32", "bf16", "fp16")
#: weight formats stored in groups that share one scale (and zero)
GROUPED = ("int4", "int8", "nf4")
#: formats each tensor class may take
ALLOWED = {
    "weights": ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "nf4"),
    "activations": ("fp32", "bf16", "fp16", "fp8", "int8"),
    "kv_cache": ("fp32", "bf16", "fp16", "fp8", "int8", "int4"),
}
#: bits -> format, per tensor class (16 means the activations' float format)
BITS = {
    "weights": {"4": "int4", "8": "int8", "16": "bf16", "32": "fp32"},
    "activations": {"8": "int8", "16": "bf16", "32": "fp32"},
    "kv_cache": {"4": "int4", "8": "fp8", "16": "bf16", "32": "fp32"},
}
#: the flag that sets each class, for messages
FLAG = {"weights": "--weights", "activations": "--activations", "kv_cache": "--kv-cache"}

_SPEC = re.compile(r"^w(?P<w>[a-z]*\d+)a(?P<a>[a-z]*\d+)(?:kv(?P<kv>[a-z]*\d+))?(?:g(?P<g>\d+))?$")


@dataclass(frozen=True)
class Precision:
    """Formats of weights, activations and KV cache; group size; kernel family.

    ``group_size``: ``None`` takes the kernel family's default, ``0`` is one group per
    output channel. ``kernel``: ``None`` takes the default family for the formats
    (``workloads.quantkernels.default_family``).
    """

    weights: str = "bf16"
    activations: str = "bf16"
    kv_cache: str = "bf16"
    group_size: int | None = None
    kernel: str | None = None

    def __post_init__(self) -> None:
        for cls in ("weights", "activations", "kv_cache"):
            v = getattr(self, cls)
            if v not in ALLOWED[cls]:
                raise WorkloadError(f"{FLAG[cls]} {v!r} is not a format roofsim knows; "
                                    f"allowed: {', '.join(ALLOWED[cls])}")
        if self.group_size is not None and (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                                            or self.group_size < 0):
            raise WorkloadError(f"--group-size must be a whole number >= 0 (0: one group per output channel), "
                                f"got {self.group_size!r}")
        if self.group_size is not None and self.weights not in GROUPED:
            raise WorkloadError(f"--group-size applies to {', '.join(GROUPED)} weights, not {self.weights} "
                                "(fp8 and float weights carry per-channel scales or none)")

    # -- what it means ---------------------------------------------------------------------
    @property
    def float_dtype(self) -> str:
        """The 16/32-bit format the model is traced in and non-matrix math runs in."""
        return self.activations if self.activations in FLOATS else "bf16"

    @property
    def compute_dtype(self) -> str:
        """The format matrix FLOPs run in: 8-bit activations run on 8-bit matrix units."""
        return self.activations

    @property
    def weights_quantized(self) -> bool:
        return self.weights != self.float_dtype

    @property
    def quantized(self) -> bool:
        """Weights or activations in a format other than the model's float format (a
        quantised kernel runs the matrix ops). A quantised KV cache alone is not."""
        return self.weights_quantized or self.activations not in FLOATS

    @property
    def uniform(self) -> bool:
        return self.weights == self.activations == self.kv_cache and self.weights in FLOATS

    def bytes_of(self, cls: str) -> float:
        return FORMAT_BYTES[getattr(self, cls)]

    def with_kernel(self, kernel: str | None) -> Precision:
        return replace(self, kernel=kernel)

    def as_dict(self) -> dict[str, object]:
        return {"weights": self.weights, "activations": self.activations, "kv_cache": self.kv_cache,
                "group_size": self.group_size, "kernel": self.kernel}

    # -- spelling ------------------------------------------------------------------------
    def __str__(self) -> str:
        if self.uniform and self.group_size is None and self.kernel is None:
            return self.weights
        act16 = self.float_dtype

        def part(cls: str, v: str) -> str:
            if v == act16 and cls != "activations":
                return "16"  # the activations' float format, as parse reads "16" for these classes
            short = {f: b for b, f in BITS[cls].items() if b != "16" or cls == "activations"}
            return short.get(v, v)

        s = f"w{part('weights', self.weights)}a{part('activations', self.activations)}"
        if self.kv_cache != act16:
            s += f"kv{part('kv_cache', self.kv_cache)}"
        if self.group_size is not None:
            s += f"g{self.group_size}"
        return s + (f"+{self.kernel}" if self.kernel else "")


#: the ``--dtype`` values roofsim always took, as precisions
ALIASES: dict[str, Precision] = {
    "fp32": Precision("fp32", "fp32", "fp32"),
    "bf16": Precision("bf16", "bf16", "bf16"),
    "fp16": Precision("fp16", "fp16", "fp16"),
    "fp8": Precision("fp8", "fp8", "bf16"),
    "int8": Precision("int8", "bf16", "bf16"),
    "int4": Precision("int4", "bf16", "bf16"),
}


def _format(cls: str, token: str, act16: str, where: str) -> str:
    """The format ``token`` (bits or a name) stands for in class ``cls``; ``where`` names the
    input in the error ("precision 'w3a16': weights" or "--weights")."""
    fmt = BITS[cls].get(token, token)
    if token == "16" and cls != "activations":
        fmt = act16
    if fmt not in ALLOWED[cls]:
        bits = ", ".join(b for b in BITS[cls])
        raise WorkloadError(f"{where} {token!r} not supported; allowed bits {bits} or formats "
                            f"{', '.join(ALLOWED[cls])}")
    return fmt


def _in_spec(text: str, cls: str) -> str:
    return f"precision {text!r}: {cls.replace('_', ' ')}"


def parse(text: str | Precision | None, what: str = "--precision") -> Precision:
    """A precision from its spelling (module docstring); bad input is one line naming it."""
    if isinstance(text, Precision):
        return text
    if text is None:
        return ALIASES["bf16"]
    if not isinstance(text, str) or not text.strip():
        raise WorkloadError(f"{what} must be a precision such as bf16 or w4a16kv8, got {text!r}")
    raw = text.strip()
    body, plus, kernel = raw.partition("+")
    body = body.lower()
    if plus and not kernel.strip():
        raise WorkloadError(f"{what} {raw!r}: a kernel family name must follow '+'")
    kern = kernel.strip() or None
    if body in ALIASES:
        return ALIASES[body].with_kernel(kern)
    m = _SPEC.match(body)
    if not m:
        raise WorkloadError(f"{what} {raw!r} is not a precision; write one of {', '.join(ALIASES)} or "
                            "w<bits>a<bits>[kv<bits>][g<group>] (e.g. w4a16, w8a8, w4a16kv8g128)")
    act = _format("activations", m["a"], "bf16", _in_spec(raw, "activations"))
    act16 = act if act in FLOATS else "bf16"
    w = _format("weights", m["w"], act16, _in_spec(raw, "weights"))
    kv = _format("kv_cache", m["kv"], act16, _in_spec(raw, "kv_cache")) if m["kv"] else act16
    group = int(m["g"]) if m["g"] is not None else None
    return Precision(w, act, kv, group, kern)


def resolve(dtype: str | Precision | None = None, *, weights: str | None = None, activations: str | None = None,
            kv_cache: str | None = None, group_size: int | None = None, kernel: str | None = None) -> Precision:
    """``dtype`` (an alias or spec) with any class set explicitly on top, as the command line
    flags ``--weights/--activations/--kv-cache/--group-size/--quant-kernel`` do."""
    p = parse(dtype)
    changes: dict[str, object] = {}
    if activations is not None:
        changes["activations"] = _format("activations", activations.strip().lower(), "bf16", FLAG["activations"])
    act16 = str(changes.get("activations", p.activations))
    act16 = act16 if act16 in FLOATS else "bf16"
    if weights is not None:
        changes["weights"] = _format("weights", weights.strip().lower(), act16, FLAG["weights"])
    elif "activations" in changes and not p.weights_quantized:
        changes["weights"] = act16  # float weights follow the activations' float format
    if kv_cache is not None:
        changes["kv_cache"] = _format("kv_cache", kv_cache.strip().lower(), act16, FLAG["kv_cache"])
    elif "activations" in changes and p.kv_cache in FLOATS:
        changes["kv_cache"] = act16
    if group_size is not None:
        changes["group_size"] = group_size
    if kernel is not None:
        changes["kernel"] = kernel
    return replace(p, **changes) if changes else p
