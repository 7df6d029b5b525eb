"""User-facing errors: one clear line, exit status 2, never a traceback.

Leaf packages (``hw_models``, ``workloads``) cannot import this module, so they mark
their own bad-input errors with ``user_facing = True``; the CLI treats both alike.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user. The message names the field or value and what is allowed."""

    user_facing = True


def is_user_facing(exc: BaseException) -> bool:
    return bool(getattr(exc, "user_facing", False))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a command, with one line saying what was kept.

    The CLI prints ``roofsim: <message>`` and exits 130 (128 + SIGINT), as shells expect.
    """

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)
        self.message = message
