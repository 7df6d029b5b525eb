"""User-facing errors: one clear line, exit status 2, never a traceback.

They live in the lowest layer so that every package above it can raise them:
``validation`` raises ``UserError`` without importing the CLI package, which re-exports
both names (``roofsim.errors``). A package that defines its own error classes can mark
them with ``user_facing = True`` instead; the CLI treats both alike (``is_user_facing``).
"""

from __future__ import annotations

import re
import sys


class UserError(ValueError):
    """Bad input from the user. The message names the field or value and what is allowed."""

    user_facing = True


def is_user_facing(exc: BaseException) -> bool:
    return bool(getattr(exc, "user_facing", False))


def one_line(text: str) -> str:
    # any line break (a field name from a hostile file may hold \r or \u2028) becomes a space
    return re.sub(r"\s*[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]\s*", " ", str(text).strip())


def exit_for(exc: BaseException) -> int:
    """The exit status of a command ``exc`` escaped: a user-facing error is printed as one line,
    ``roofsim: error: ...``, on stderr and gives 2; anything else is a bug and is re-raised."""
    if not is_user_facing(exc):
        raise exc
    print(one_line(f"roofsim: error: {exc}"), file=sys.stderr)
    return 2
