"""Bad workload input (unknown model, bad phase/batch/dtype, a user's model that fails to
build): one line for the user."""

from __future__ import annotations


class WorkloadError(ValueError):
    """Raised for bad user input; the CLI prints the message and exits 2."""

    user_facing = True


def first_line(e: BaseException) -> str:
    """``Type: first line of the message``: enough to act on, short enough for one line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


class user_model_errors:
    """An exception raised while building or tracing the user's model (their function, or
    transformers code on their config: data-dependent control flow, ``.item()`` on meta
    tensors, a ``KeyError``, even ``SystemExit``) is a property of their input: one line
    naming the model and the exception. Ctrl-C still interrupts."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __enter__(self) -> None:
        return None

    def __exit__(self, tp, exc, tb) -> bool:
        if exc is None or getattr(exc, "user_facing", False) or isinstance(exc, KeyboardInterrupt):
            return False
        if isinstance(exc, (Exception, SystemExit)):
            raise WorkloadError(f"could not trace {self.ref}: {first_line(exc)}") from None
        return False
