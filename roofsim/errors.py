"""User-facing errors: one clear line, exit status 2, never a traceback.

``UserError`` and ``is_user_facing`` are defined in ``hw_models.errors`` (the lowest
layer, so ``validation`` raises them without importing this package) and re-exported
here; ``Interrupted`` belongs to the CLI alone.
"""

from __future__ import annotations

from hw_models.errors import UserError, is_user_facing

__all__ = ["Interrupted", "UserError", "is_user_facing"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a command, with one line saying what was kept.

    The CLI prints ``roofsim: <message>`` and exits 130 (128 + SIGINT), as shells expect.
    """

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)
        self.message = message
