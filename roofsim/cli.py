"""The ``roofsim`` command. Thin: each subcommand lives in ``roofsim/commands/<name>.py``
and exposes ``register(subparsers)``, which adds a parser whose ``func(args)`` runs it."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
import warnings

from pydantic import ValidationError

from hw_models.errors import exit_for, one_line
from roofsim import commands
from roofsim.errors import Interrupted

#: exit status after Ctrl-C: 128 + SIGINT, as shells report it
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage dump is noise; one line, exit 2
        self.exit(2, f"roofsim: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="roofsim", description="Trace PyTorch models, simulate them on hardware, explain the time.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show library warnings (transformers, torch); -vv also their info messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"roofsim.commands.{mod.name}").register(sub)
    for p in _parsers(sub):  # -v also after the command: roofsim simulate ... -v
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _parsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    out = []
    for p in dict.fromkeys(sub.choices.values()):
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        out += _parsers(nested[0]) if nested else [p]
    return out


@contextlib.contextmanager
def library_noise(verbose: int):
    """Without ``-v``, library warnings (transformers' FutureWarnings, torch's
    UserWarnings) and transformers' log messages never reach the terminal: roofsim says
    what matters in its own words. ``-v`` shows warnings, ``-vv`` also transformers' info."""
    level = {0: "error", 1: "warning"}.get(verbose, "info")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", level)
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:  # already imported (roofsim called in-process): set it there too
        with contextlib.suppress(Exception):
            sys.modules["transformers"].logging.set_verbosity(
                {"error": 40, "warning": 30, "info": 20}[os.environ["TRANSFORMERS_VERBOSITY"]]
                if os.environ["TRANSFORMERS_VERBOSITY"] in ("error", "warning", "info") else 40)
    with warnings.catch_warnings():
        warnings.simplefilter("default" if verbose else "ignore")
        yield


def _forget_unhandled_interrupt() -> None:
    """CPython (3.11) marks a Ctrl-C that escaped code run through ``exec`` of a string (a
    dataclass's generated methods while a module imports, for one) as unhandled, and under
    ``python -m`` then exits by re-raising SIGINT however the program handled it, so the
    shell sees a signal death, not our exit status. Each ``exec`` of a string clears that
    mark when it starts; an empty one clears it for good."""
    exec("pass", {})


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        with library_noise(int(getattr(args, "verbose", 0) or 0)):
            return int(args.func(args) or 0)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        print(one_line(f"roofsim: error: {loc}: {err['msg']}"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt as e:
        # commands that keep partial work raise Interrupted saying what they kept
        msg = e.message if isinstance(e, Interrupted) else "interrupted"
        print(f"roofsim: {one_line(msg)}", file=sys.stderr)
        _forget_unhandled_interrupt()
        return EXIT_INTERRUPTED
    except Exception as e:
        return exit_for(e)


if __name__ == "__main__":
    raise SystemExit(main())
