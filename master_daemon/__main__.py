"""``python -m master_daemon serve`` and ``status``: the same as ``ligan daemon serve`` and
``ligan status``."""
from __future__ import annotations

import argparse
import sys

from master_daemon import cli
from setup import entry
from setup.config import Settings


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m master_daemon")
    sub = entry.subcommands(parser)
    cli.register_serve(sub, settings)
    cli.register_status(sub, settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    return entry.run(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
