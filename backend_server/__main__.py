"""``python -m backend_server serve …``: the same as ``ligan backend serve …``."""
from __future__ import annotations

import argparse
import logging
import sys

from backend_server.cli import register
from models import cli as model_cli
from setup.config import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        return model_cli.fail(str(exc))
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m backend_server")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub, settings)
    args = parser.parse_args(["backend", *(argv if argv is not None else sys.argv[1:])])
    try:
        return int(args.handler(args, settings) or 0)
    except model_cli.CommandError as exc:
        return model_cli.fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
