"""What every LiGAN command line shares — ``ligan`` and ``python -m backend_server``,
``master_daemon`` and ``frontend_server``: the settings read once (a bad one is a one-line error,
exit 2), the operator's log format, and failures printed as one line instead of a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from setup.config import Settings, SettingsError, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run(build_parser: Callable[[Settings], argparse.ArgumentParser],
        argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with the parser ``build_parser`` makes and run the chosen handler
    (``handler(args, settings)`` → exit status)."""
    from models.cli import CommandError, fail

    try:
        settings = load_settings()
    except SettingsError as exc:
        return fail(str(exc))
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    args = build_parser(settings).parse_args(argv)
    try:
        return int(args.handler(args, settings) or 0)
    except CommandError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("ligan: interrupted", file=sys.stderr)
        return 130


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The parser's required COMMAND argument, for components to register their commands."""
    return parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
