"""``WorkloadGraph``: ops in program order, tensor-dependency edges, a pandas view.

Importing this module imports neither networkx nor pandas (a cached answer must start
fast): the edges are kept as a dict, and ``g`` (a ``networkx.DiGraph``) and
``to_pandas()`` are built on first use.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .op import ROLES, Access, Op


class WorkloadGraph:
    """A device-free description of one step of work.

    Nodes are op ids carrying the ``Op`` under ``"op"``; an edge u->v means v reads a
    tensor u wrote (edge attribute ``tensor``). ``ops`` keeps program order, which is
    the order a host issues kernels in.
    """

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.meta: dict[str, Any] = dict(meta or {})
        self._ops: list[Op] = []
        self._ids: set[int] = set()
        self._writer: dict[str, int] = {}
        #: (u, v) -> tensor, in insertion order (a later edge u->v replaces the tensor, as networkx does)
        self._edges: dict[tuple[int, int], str | None] = {}
        self._nx = None

    # -- building -------------------------------------------------------------
    def add(self, op: Op) -> Op:
        """Append ``op`` in program order, linking it to the last writer of each input."""
        if op.id in self._ids:
            raise ValueError(f"duplicate op id {op.id}")
        self._ids.add(op.id)
        self._ops.append(op)
        self._nx = None
        edges, writer = self._edges, self._writer
        for a in op.reads:
            src = writer.get(a.tensor)
            if src is not None and src != op.id:
                edges[(src, op.id)] = a.tensor
        for a in op.writes:
            writer[a.tensor] = op.id
        return op

    def add_edge(self, u: int, v: int, tensor: str | None = None) -> None:
        """An extra dependency edge u -> v (both op ids of this graph)."""
        self._edges[(u, v)] = tensor
        self._nx = None

    def edges(self) -> list[tuple[int, int]]:
        """Dependency edges (u, v): v reads a tensor u wrote, in the order they were found."""
        return list(self._edges)

    @property
    def g(self):
        """The graph as a ``networkx.DiGraph`` (nodes carry ``op``, edges ``tensor``), built on first use.
        Read it; change the graph through ``add``."""
        if self._nx is None:
            import networkx as nx

            g = nx.DiGraph()
            for op in self._ops:
                g.add_node(op.id, op=op)
            for (u, v), t in self._edges.items():
                g.add_edge(u, v, tensor=t)
            self._nx = g
        return self._nx

    def next_id(self) -> int:
        return len(self._ops) and self._ops[-1].id + 1

    def extend(self, ops: Iterable[Op]) -> None:
        for op in ops:
            self.add(op)

    # -- reading --------------------------------------------------------------
    @property
    def ops(self) -> list[Op]:
        return self._ops

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self):
        return iter(self._ops)

    @property
    def kernels(self) -> int:
        return sum(op.launches for op in self._ops)

    @property
    def flops(self) -> float:
        return float(sum(op.total_flops for op in self._ops))

    @property
    def bytes(self) -> int:
        return sum(op.bytes for op in self._ops)

    def bytes_by_role(self) -> dict[str, int]:
        out = dict.fromkeys(ROLES, 0)
        for op in self._ops:
            for role, b in op.bytes_by_role().items():
                out[role] += b
        return out

    def unknown_ops(self) -> Counter:
        return Counter(op.name for op in self._ops if op.unknown)

    def summary(self) -> dict[str, Any]:
        return {
            **self.meta,
            "ops": len(self._ops),
            "kernels": self.kernels,
            "flops": self.flops,
            "bytes": self.bytes,
            "bytes_by_role": self.bytes_by_role(),
            "unknown_ops": dict(self.unknown_ops()),
        }

    def to_pandas(self):
        import pandas as pd

        rows = []
        for op in self._ops:
            roles = op.bytes_by_role()
            rows.append(
                {
                    "id": op.id,
                    "name": op.name,
                    "kind": op.kind,
                    "dtype": op.dtype,
                    "module": op.module,
                    "flops": op.total_flops,
                    "bytes": op.bytes,
                    **{f"bytes_{r}": roles.get(r, 0) for r in ROLES},
                    "launches": op.launches,
                    "intensity": op.intensity,
                    "updates": op.updates,
                    "distinct_targets": op.distinct_targets,
                    "unknown": op.unknown,
                    "device": op.device,
                    "stream": op.stream,
                    "shapes": op.shapes,
                }
            )
        return pd.DataFrame(rows)

    # -- persistence ----------------------------------------------------------
    def to_json(self, path: str | Path | None = None) -> str:
        doc = self.to_doc()
        text = json.dumps(doc, sort_keys=True)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_doc(self) -> dict[str, Any]:
        """The graph as plain JSON-able data (``from_doc`` reads it back)."""
        return {
            "meta": self.meta,
            "ops": [_op_doc(op) for op in self._ops],
            "edges": [[u, v, t] for (u, v), t in self._edges.items()],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WorkloadGraph:
        g = cls(meta=doc.get("meta"))
        for d in doc["ops"]:
            g.add(Op.from_dict(d))
        for u, v, t in doc.get("edges", []):
            g.add_edge(u, v, t)
        return g

    @classmethod
    def from_json(cls, src: str | Path) -> WorkloadGraph:
        text = str(src) if str(src).lstrip().startswith("{") else Path(src).read_text()
        return cls.from_doc(json.loads(text))

    def copy(self) -> WorkloadGraph:
        return WorkloadGraph.from_json(self.to_json())


def _op_doc(op: Op) -> dict[str, Any]:
    """``Op.to_dict()`` without ``dataclasses.asdict``'s deep copy (the values are plain)."""
    return {
        "id": op.id, "name": op.name, "kind": op.kind, "dtype": op.dtype, "flops": dict(op.flops),
        "reads": [_acc(a) for a in op.reads], "writes": [_acc(a) for a in op.writes], "launches": op.launches,
        "shapes": [list(s) for s in op.shapes], "module": op.module, "updates": op.updates,
        "distinct_targets": op.distinct_targets, "unknown": op.unknown, "attrs": _plain(op.attrs),
        "device": op.device, "stream": op.stream,
    }


def _acc(a: Access) -> dict[str, Any]:
    return {"tensor": a.tensor, "bytes": a.bytes, "role": a.role}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
