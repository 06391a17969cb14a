"""``python -m master_daemon serve``: the same as ``ligan daemon serve``."""
from __future__ import annotations

import argparse
import sys

from master_daemon import cli
from setup import entry


def build_parser(settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m master_daemon")
    cli.register_serve(entry.subcommands(parser), settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    return entry.run(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
