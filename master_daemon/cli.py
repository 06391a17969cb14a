"""``ligan daemon serve``: run the master daemon with the configured scheduler.

Unlike ``ligan up`` (everything local, backends cancelled on Ctrl-C) this is the cluster
deployment: ``LIGAN_SCHEDULER=slurm``, and backends keep running across a restart of the
daemon (it re-attaches to them) unless ``--cancel-on-exit``.
"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, settings) -> None:
    """Add ``daemon serve`` to the ``ligan`` parser."""
    daemon = sub.add_parser("daemon", help="the master daemon (the public entry point)",
                            description="The master daemon: sessions, backend jobs, event "
                                        "streams and the proxy to the frontend server.")
    dsub = daemon.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    register_serve(dsub, settings)


def register_serve(sub: argparse._SubParsersAction, settings) -> None:
    serve = sub.add_parser(
        "serve", help="serve until SIGINT/SIGTERM",
        description=f"Serve on {settings.host}:{settings.port} (LIGAN_HOST, LIGAN_PORT) with the "
                    f"{settings.scheduler} scheduler (LIGAN_SCHEDULER), starting the frontend "
                    f"server as a child process. The shared secret for the frontend is "
                    f"LIGAN_DAEMON_TOKEN when set, else a fresh one.")
    serve.add_argument("--cancel-on-exit", action="store_true",
                       help="cancel every backend job when stopping (default: leave them for "
                            "the next daemon to re-attach)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, settings) -> int:
    from master_daemon.app import serve_forever

    return serve_forever(settings, cancel_on_exit=args.cancel_on_exit)
