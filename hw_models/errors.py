"""User-facing errors: one clear line, exit status 2, never a traceback.

They live in the lowest layer so that every package above it can raise them:
``validation`` raises ``UserError`` without importing the CLI package, which re-exports
both names (``roofsim.errors``). A package that defines its own error classes can mark
them with ``user_facing = True`` instead; the CLI treats both alike (``is_user_facing``).
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user. The message names the field or value and what is allowed."""

    user_facing = True


def is_user_facing(exc: BaseException) -> bool:
    return bool(getattr(exc, "user_facing", False))
