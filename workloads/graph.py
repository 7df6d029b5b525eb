"""``WorkloadGraph``: ops in program order, tensor-dependency edges, a pandas view."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from .op import ROLES, Op


class WorkloadGraph:
    """A device-free description of one step of work.

    Nodes are op ids carrying the ``Op`` under ``"op"``; an edge u->v means v reads a
    tensor u wrote (edge attribute ``tensor``). ``ops`` keeps program order, which is
    the order a host issues kernels in.
    """

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.g = nx.DiGraph()
        self.meta: dict[str, Any] = dict(meta or {})
        self._ops: list[Op] = []
        self._writer: dict[str, int] = {}

    # -- building -------------------------------------------------------------
    def add(self, op: Op) -> Op:
        """Append ``op`` in program order, linking it to the last writer of each input."""
        if op.id in self.g:
            raise ValueError(f"duplicate op id {op.id}")
        self.g.add_node(op.id, op=op)
        self._ops.append(op)
        for a in op.reads:
            src = self._writer.get(a.tensor)
            if src is not None and src != op.id:
                self.g.add_edge(src, op.id, tensor=a.tensor)
        for a in op.writes:
            self._writer[a.tensor] = op.id
        return op

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

    def to_pandas(self) -> pd.DataFrame:
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
        doc = {
            "meta": self.meta,
            "ops": [op.to_dict() for op in self._ops],
            "edges": [[u, v, d.get("tensor")] for u, v, d in self.g.edges(data=True)],
        }
        text = json.dumps(doc, sort_keys=True)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, src: str | Path) -> WorkloadGraph:
        text = str(src) if str(src).lstrip().startswith("{") else Path(src).read_text()
        doc = json.loads(text)
        g = cls(meta=doc.get("meta"))
        for d in doc["ops"]:
            g.add(Op.from_dict(d))
        for u, v, t in doc.get("edges", []):
            g.g.add_edge(u, v, tensor=t)
        return g

    def copy(self) -> WorkloadGraph:
        return WorkloadGraph.from_json(self.to_json())
