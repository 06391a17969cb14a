"""``python -m frontend_server serve`` (started by the master daemon), ``ligan user …`` and
``ligan lineup report``."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from setup import entry


def register(sub: argparse._SubParsersAction, settings,
             lineup: argparse._SubParsersAction | None = None) -> None:
    """Add ``user add NAME [--admin]`` and ``user list`` to the ``ligan`` parser, and
    ``report`` to its ``lineup`` actions when given."""
    if lineup is not None:
        _register_report(lineup)
    user = sub.add_parser("user", help="web UI accounts",
                          description="Accounts of the web UI (stored under LIGAN_HOME).")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create an account (password from a prompt or stdin)",
                          description="Create a web UI account. The password is asked for "
                                      "twice on a terminal, or read as the first line of "
                                      "standard input (e.g. from a password manager).")
    add.add_argument("name", help="user name (letters, digits, . _ - @)")
    add.add_argument("--admin", action="store_true", help="may create other accounts")
    add.set_defaults(handler=_add_user)
    lst = usub.add_parser("list", help="list the accounts")
    lst.set_defaults(handler=_list_users)


def _register_report(lsub: argparse._SubParsersAction) -> None:
    rep = lsub.add_parser(
        "report", help="the printable PDF report of a saved lineup",
        description="Write the case-file report of a saved lineup (as the web UI's 'Download "
                    "report'): the lineup as shown, the culprit's descriptions, the provenance "
                    "of every face, the presentation-parity check, the simulated and the real "
                    "mock-witness results with their intervals. Reads the frontend's database "
                    "and results under LIGAN_HOME. See docs/fairness.md.")
    rep.add_argument("lineup_id", metavar="LINEUP_ID",
                     help="the lineup's id (in its URL and lineup.json)")
    rep.add_argument("--out", type=Path, required=True, metavar="REPORT.pdf",
                     help="where to write the PDF")
    rep.set_defaults(handler=_report)


def _report(args: argparse.Namespace, settings) -> int:
    """``ligan lineup report``: the frontend's lineup, found by its id, as a PDF."""
    from frontend_server.app import database_path
    from frontend_server.errors import ApiError
    from frontend_server.report import lineup_report

    db = database_path(settings)
    if not db.is_file():
        raise entry.CommandError(f"no frontend database at {db}: is LIGAN_HOME "
                                 f"({settings.home}) the one the web UI runs with?")
    store = _store(settings)
    owner = store.lineup_owner(args.lineup_id)
    if owner is None:
        raise entry.CommandError(f"no lineup {args.lineup_id!r} in {db}")
    if args.out.is_dir() or not args.out.parent.is_dir():
        raise entry.CommandError(f"--out must be a file in an existing folder, got {args.out}")
    try:
        data = lineup_report(store, settings.results_root, settings.bundle, owner,
                             store.lineup(owner, args.lineup_id))
    except ApiError as exc:
        raise entry.CommandError(exc.message) from None
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data) // 1024} KB)")
    return 0


def _store(settings):
    from frontend_server.app import database_path
    from frontend_server.store import Store

    return Store(database_path(settings))


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _add_user(args, settings) -> int:
    from frontend_server.store import StoreError

    try:
        user = _store(settings).add_user(args.name, _read_password(), args.admin)
    except (StoreError, ValueError) as exc:
        print(f"ligan: {exc}", file=sys.stderr)
        return 1
    print(f"created {'administrator' if user['is_admin'] else 'user'} {user['name']}")
    return 0


def _list_users(args, settings) -> int:
    for user in _store(settings).users():
        print(f"{user['name']}{' (admin)' if user['is_admin'] else ''}"
              f"{' (disabled)' if user['disabled'] else ''}")
    return 0


def watch_lifeline() -> None:
    """Exit when the master daemon that started this server is gone.

    The daemon passes the read end of a pipe (``LIFELINE_ENV``) whose write end only it
    holds; reading it blocks until the daemon's process ends, however it ended, then returns
    end-of-file. A frontend started by hand has no lifeline and keeps running.
    """
    import os
    import signal
    import threading

    from setup.config import LIFELINE_ENV

    fd = os.environ.pop(LIFELINE_ENV, "")
    if not fd.isdigit():
        return

    def watch() -> None:
        try:
            while os.read(int(fd), 1):
                pass
        except OSError:
            pass
        logging.getLogger(__name__).warning("the master daemon is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ligan-lifeline", daemon=True).start()


def _serve(args, settings) -> int:
    import waitress

    from frontend_server.app import create_app

    app = create_app(settings, args.daemon_url)
    watch_lifeline()
    logging.getLogger(__name__).info("frontend serving on http://%s:%d", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=8, ident="ligan-frontend",
                   clear_untrusted_proxy_headers=False)
    return 0


def build_parser(settings) -> argparse.ArgumentParser:
    """``serve`` (for the master daemon) and ``user …``."""
    parser = argparse.ArgumentParser(prog="python -m frontend_server",
                                     description="LiGAN's frontend server.")
    sub = entry.subcommands(parser)
    serve = sub.add_parser("serve", help="serve the web UI (started by the master daemon)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=settings.frontend_port or 8701)
    serve.add_argument("--daemon-url", default="",
                       help="the master daemon's URL for the internal API (token from "
                            "LIGAN_DAEMON_TOKEN)")
    serve.set_defaults(handler=_serve)
    register(sub, settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m frontend_server serve --host H --port P --daemon-url URL`` or ``user …``."""
    return entry.run(build_parser, argv)
