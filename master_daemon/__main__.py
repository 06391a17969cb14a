"""``python -m master_daemon serve``: the same as ``ligan daemon serve``."""
from __future__ import annotations

import argparse
import logging
import sys

from master_daemon import cli
from setup.config import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"ligan: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m master_daemon")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli.register_serve(sub, settings)
    args = parser.parse_args(argv)
    return int(args.handler(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
