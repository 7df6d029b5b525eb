"""Replicate one traced decoder layer into N identical layers.

Tracing a 1-layer model and copying its layer ops N-1 times gives exactly the ops a full
N-layer trace gives (tests compare the two): per copy i the layer's weights become
``w:<prefix>.i.*``, its KV cache ``kv:i:*``, its module paths ``<prefix>.i``, activations
it writes get fresh names, and its hidden-state input is the previous copy's output. Ops
after the layer read the last copy's output. The layer copied may be layer k > 0 (a
model whose first k layers differ, as DeepSeek-V3's dense ones): layers 0..k-1 stay as
traced and copies k..N-1 follow.
"""

from __future__ import annotations

from dataclasses import replace

from .op import Access, Op


class ReplicationError(RuntimeError):
    pass


def _in_layer(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def replicate_sizes(sizes: dict[str, tuple[int, int]], prefix: str, num_layers: int) -> dict[str, tuple[int, int]]:
    """Parameter sizes of the full model from those of the 1-layer model."""
    parent, _, first = prefix.rpartition(".")
    w0 = f"w:{prefix}."
    out = {}
    for name, v in sizes.items():
        if name.startswith(w0):
            for i in range(int(first), num_layers):
                out[f"w:{parent}.{i}." + name[len(w0):]] = v
        else:
            out[name] = v
    return out


def replicate_layer(ops: list[Op], prefix: str, io: tuple[list[str], list[str]], num_layers: int) -> list[Op]:
    """``prefix`` is the module path of layer 0 (e.g. ``model.layers.0``); ``io`` its input
    and output tensor names (first of each is the hidden state)."""
    idx = [i for i, op in enumerate(ops) if _in_layer(op.module, prefix)]
    if not idx:
        raise ReplicationError(f"no ops under {prefix}")
    lo, hi = idx[0], idx[-1] + 1
    if hi - lo != len(idx):
        raise ReplicationError(f"ops of {prefix} are not contiguous")
    pre, layer, post = ops[:lo], ops[lo:hi], ops[hi:]
    h_in, h_out = io[0][0], io[1][0]
    parent, _, zero = prefix.rpartition(".")
    w0 = f"w:{prefix}."
    kv0 = f"kv:{zero}:"
    written = {a.tensor for op in layer for a in op.writes
               if not a.tensor.startswith(("w:", "kv:")) and a.tensor != h_in}

    def mapper(i: int, prev_out: str):
        def rename(t: str) -> str:
            if i == int(zero):
                return t
            if t == h_in:
                return prev_out
            if t.startswith(w0):
                return f"w:{parent}.{i}." + t[len(w0):]
            if t.startswith(kv0):
                return f"kv:{i}:" + t[len(kv0):]
            if t in written:
                return f"{t}@{i}"
            return t
        return rename

    out: list[Op] = list(pre)
    prev_out = h_in
    for i in range(int(zero), num_layers):
        rename = mapper(i, prev_out)
        mod_new = f"{parent}.{i}"
        for op in layer:
            out.append(replace(
                op,
                reads=[Access(rename(a.tensor), a.bytes, a.role) for a in op.reads],
                writes=[Access(rename(a.tensor), a.bytes, a.role) for a in op.writes],
                module=mod_new + op.module[len(prefix):],
                attrs=dict(op.attrs),
            ))
        prev_out = rename(h_out)
    last = prev_out
    for op in post:
        out.append(replace(op, reads=[Access(last if a.tensor == h_out else a.tensor, a.bytes, a.role)
                                      for a in op.reads]))
    return [replace(op, id=i) for i, op in enumerate(out)]
