"""The ``ligan`` command: one entry point whose subcommands come from each component.

Each component module exposes ``register(subparsers, settings)``; a handler returns the exit
status. Failures meant for the user raise ``setup.entry.CommandError`` and print one line.
"""
from __future__ import annotations

import argparse
import sys

from backend_server import cli as backend_cli
from master_daemon import cli as daemon_cli
from frontend_server import cli as frontend_cli
from setup import entry, launcher
from setup.commands import attributes as attributes_cli
from setup.commands import bundle as model_cli
from setup.commands import dataset as dataset_cli
from setup.commands import lineup as lineup_cli
from setup.commands import research as research_cli
from setup.commands import train as training_cli


def build_parser(settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ligan",
        description="LiGAN: synthetic faces of people who do not exist, for fair police "
                    "lineups and face-memory research. Run 'ligan COMMAND --help' for details.")
    sub = entry.subcommands(parser)
    launcher.register(sub, settings)
    backend_cli.register(sub, settings)
    daemon_cli.register(sub, settings)
    model_cli.register(sub, settings)
    lineup_actions = lineup_cli.register(sub, settings)
    research_cli.register(sub, settings)
    attributes_cli.register(sub, settings)
    training_cli.register(sub, settings)
    dataset_cli.register(sub, settings)
    frontend_cli.register(sub, settings, lineup_actions)
    return parser


def main(argv: list[str] | None = None) -> int:
    return entry.run(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
