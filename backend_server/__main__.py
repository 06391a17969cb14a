"""``python -m backend_server serve …``: the same as ``ligan backend serve …``."""
from __future__ import annotations

import argparse
import sys

from backend_server.cli import register
from setup import entry
from setup.config import Settings


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend_server")
    register(entry.subcommands(parser), settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    return entry.run(build_parser, ["backend", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
