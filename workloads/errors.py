"""Bad workload input (unknown model, bad phase/batch/dtype): one line for the user."""

from __future__ import annotations


class WorkloadError(ValueError):
    """Raised for bad user input; the CLI prints the message and exits 2."""

    user_facing = True
