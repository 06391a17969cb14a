"""``python -m frontend_server serve`` (started by the master daemon) and ``ligan user add``."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

from setup import entry


def register(sub: argparse._SubParsersAction, settings) -> None:
    """Add ``user add NAME [--admin]`` to the ``ligan`` parser."""
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
