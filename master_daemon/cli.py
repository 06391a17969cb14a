"""``ligan daemon serve``: run the master daemon with the configured scheduler; ``ligan
status``: ask the running one how it is doing.

Unlike ``ligan up`` (everything local, backends cancelled on Ctrl-C) this is the cluster
deployment: ``LIGAN_SCHEDULER=slurm``, and backends keep running across a restart of the
daemon (it re-attaches to them) unless ``--cancel-on-exit``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from setup.config import Settings


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """Add ``daemon serve`` and ``status`` to the ``ligan`` parser."""
    daemon = sub.add_parser("daemon", help="the master daemon (the public entry point)",
                            description="The master daemon: sessions, backend jobs, event "
                                        "streams and the proxy to the frontend server.")
    dsub = daemon.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    register_serve(dsub, settings)
    register_status(sub, settings)


def register_status(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """Add ``status``: the running master daemon's sessions, backends, jobs, queue and disk."""
    status = sub.add_parser(
        "status", help="what the running master daemon is doing (for operators)",
        description=f"Ask the master daemon of LIGAN_HOME={settings.home} for its sessions "
                    f"(user, state, backend, job id, precision), queued sessions and tasks, "
                    f"running training jobs and the disk free under LIGAN_HOME. It finds the "
                    f"daemon and its token in LIGAN_HOME/var/daemon.json, which the daemon "
                    f"writes while it runs. Exit status 1 when no daemon answers.")
    status.add_argument("--json", action="store_true",
                        help="print the daemon's answer (GET /api/status) as JSON")
    status.add_argument("--url", default="",
                        help="ask the daemon at this URL instead (token: LIGAN_DAEMON_TOKEN, "
                             "else daemon.json)")
    status.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the answer")
    status.set_defaults(handler=_status)


def register_serve(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """Add ``serve``: the daemon until SIGINT/SIGTERM."""
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


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from master_daemon.app import serve_forever

    return serve_forever(settings, cancel_on_exit=args.cancel_on_exit)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from master_daemon.status import StatusError, fetch_status, format_status

    try:
        st = fetch_status(settings.home, url=args.url,
                          token=os.environ.get("LIGAN_DAEMON_TOKEN", "") if args.url else "",
                          timeout=args.timeout)
    except StatusError as exc:
        print(f"ligan: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(st, indent=2, sort_keys=True) if args.json else format_status(st))
    return 0
