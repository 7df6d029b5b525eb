"""Which measured rows are held out from the fit, decided before any fit runs.

The split is by *shape family*, never by random row, so a held-out row's near
neighbours are not in training: every row of one family is on the same side.

* rows of a public dataset that name a model (``params.model``, a Hugging Face id):
  the family is the model; the fit sees some models and is judged on others;
* collectives: the family is the group size (a fit on 2 and 4 ranks predicts 8);
* harness kernel rows: the family is the op at one dtype in one half-decade band of work
  size (band ``b = floor(2 log10(bytes or FLOPs))``, a factor of about 3), and every
  third band of each op is held out (``b mod 3`` equal to the op's hashed offset): a
  held-out row's nearest training rows of the same op lie in the neighbouring bands, so
  the curves must interpolate between measured sizes, not recall them or extrapolate.
  (Hashing each band on its own was tried first: it held out an op's whole upper range
  by chance, gelu from 16k elements up on the first dense CPU dataset.)
* whole-model steps (``model``) are always held out, and the rows that calibrate
  host overheads (``framework``: kernel-free runs of model code; ``dispatch``: bare
  tiny ops) always train.

A family is held out when the SHA-256 of its key, read as an integer, is divisible by
3: a fixed third, the same on every machine, chosen by nobody.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

ALWAYS_HELD = ("model",)
NEVER_HELD = ("framework", "dispatch")
#: families measured as matrix work (their size is FLOPs, the rest bytes)
_FLOP_FAMILIES = ("matmul", "gemv", "attention")


def _params(row: dict[str, Any]) -> dict[str, Any]:
    p = row.get("params") or ""
    if isinstance(p, dict):
        return p
    if isinstance(p, float) or not p:  # NaN from pandas
        return {}
    try:
        out = json.loads(p)
    except (TypeError, json.JSONDecodeError):
        return {}
    return out if isinstance(out, dict) else {}


def family_key(row: dict[str, Any]) -> str:
    """The shape family a measured row belongs to (see the module docstring)."""
    params = _params(row)
    if params.get("model") and row.get("family") not in ALWAYS_HELD + NEVER_HELD:
        return f"model:{params['model']}"
    fam = str(row.get("family"))
    if fam == "collective":
        # a collective's family is its group size: the fit must predict a group it never saw
        shape = json.loads(row["shape"]) if isinstance(row.get("shape"), str) else (row.get("shape") or {})
        return f"collective/{row.get('op')}/{row.get('dtype')}/ranks{shape.get('ranks')}"
    size = float(row.get("flops") if fam in _FLOP_FAMILIES else row.get("bytes") or 0.0) or 0.0
    band = math.floor(2 * math.log10(size)) if size > 0 else 0
    return f"{fam}/{row.get('op')}/{row.get('dtype')}/1e{band / 2:g}"


def _third(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 3


def held_out(row: dict[str, Any]) -> bool:
    fam = str(row.get("family"))
    if fam in ALWAYS_HELD:
        return True
    if fam in NEVER_HELD:
        return False
    key = family_key(row)
    op, _, band = key.rpartition("/1e")
    if op and not key.startswith(("model:", "collective/")):
        return round(2 * float(band)) % 3 == _third(op)  # every third size band of the op
    return _third(key) == 0
