"""What every LiGAN command line shares — ``ligan`` and ``python -m backend_server``,
``master_daemon`` and ``frontend_server``: the settings read once (a bad one is a one-line error,
exit 2), the operator's log format, and failures printed as one line instead of a traceback.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Callable, Sequence

from setup.config import Settings, SettingsError, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CommandError(Exception):
    """A user-facing failure: printed as ``ligan: error: <message>`` with exit status 2."""


def fail(message: str) -> int:
    """Print ``message`` as the one-line error of a command; returns its exit status, 2."""
    print(f"ligan: error: {message}", file=sys.stderr)
    return 2


def run(build_parser: Callable[[Settings], argparse.ArgumentParser],
        argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with the parser ``build_parser`` makes and run the chosen handler
    (``handler(args, settings)`` → exit status)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        return fail(str(exc))
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    args = build_parser(settings).parse_args(attach_negative_values(
        sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args, settings) or 0)
    except CommandError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("ligan: interrupted", file=sys.stderr)
        return 130


# A value that starts with a minus sign but is a list of numbers ("-2,-1,0,1,2", "-0.5,0.5"):
# argparse takes any such word for an option unless it is a single negative number.
_NUMBER_LIST = re.compile(r"^-\d*\.?\d+(,\s*-?\d*\.?\d+)+$")


def attach_negative_values(argv: Sequence[str]) -> list[str]:
    """``--opt -2,-1,0`` → ``--opt=-2,-1,0``, so that documented lists of strengths or offsets
    parse as written."""
    out: list[str] = []
    for word in argv:
        if (out and _NUMBER_LIST.match(word) and out[-1].startswith("--")
                and "=" not in out[-1]):
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The parser's required COMMAND argument, for components to register their commands."""
    return parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
