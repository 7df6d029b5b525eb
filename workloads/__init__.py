"""What work *is*: ops, graphs, the tracer, cost rules and the model zoo (no hardware)."""

from .errors import WorkloadError
from .graph import WorkloadGraph
from .op import Access, Op
from .tracer import DtypePolicy, trace
from .zoo import build, list_models

__all__ = ["Access", "DtypePolicy", "Op", "WorkloadError", "WorkloadGraph", "build", "list_models", "trace"]
