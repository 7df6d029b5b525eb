"""What work *is*: ops, graphs, the tracer, cost rules and the model zoo (no hardware).

Importing the package (and ``build`` answering from the graph cache) imports neither
torch nor transformers; ``trace`` and ``list_models`` load them on first use.
"""

from typing import Any

from .builder import build
from .errors import WorkloadError
from .graph import WorkloadGraph
from .op import Access, Op
from .steps import DtypePolicy

__all__ = ["Access", "DtypePolicy", "Op", "WorkloadError", "WorkloadGraph", "build", "list_models", "trace"]


def __getattr__(name: str) -> Any:
    if name == "trace":
        from .tracer import trace

        return trace
    if name == "list_models":
        from .zoo import list_models

        return list_models
    raise AttributeError(f"module 'workloads' has no attribute {name!r}")
