"""The capacity planner: which hardware, how many devices, at what batch, at what cost.

``plan(...)`` sweeps models × hardware × tp × batch × context into a DataFrame (column
definitions in ``roofsim.planner.evaluate``); ``best(df)`` picks per hardware;
``sensitivity(...)`` ranks spec parameters by how much they move TPOT and TTFT;
``roofsim.planner.whatif`` edits specs (``--set``/``--scale``).
"""

from .api import best, plan, settings, systems_for
from .sensitivity import sensitivity

__all__ = ["best", "plan", "sensitivity", "settings", "systems_for"]
