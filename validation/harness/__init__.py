"""The measurement harness: runs on real hardware with only torch, numpy and pandas.

``python -m validation.harness --device cpu|cuda [--quick|--tiny] --out DIR``
"""

from .cases import Case
from .run import run
from .store import Store, StoreError, read_csv
from .suites import cases

__all__ = ["Case", "Store", "StoreError", "cases", "read_csv", "run"]
