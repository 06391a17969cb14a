"""``ligan up``: start the whole application on this machine with the embedded defaults.

The embedded default is: the master daemon (the one address users open), the frontend server
behind it and one backend per user session, all as local processes, on the CPU, with the
default bundle. On first start, when there is no account yet, an administrator ``admin`` is
created and its password printed once (``LIGAN_ADMIN_PASSWORD`` chooses it instead).
``ligan up --check`` reports what would start, and exits.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from models.runtime import describe_devices, quiet_tensorflow_logs

ADMIN_NAME = "admin"
ADMIN_PASSWORD_ENV = "LIGAN_ADMIN_PASSWORD"


@dataclass(frozen=True)
class Component:
    name: str
    module: str  # the module whose presence means the component is installed


COMPONENTS = (
    Component("master daemon", "master_daemon.app"),
    Component("frontend server + web UI", "frontend_server.app"),
    Component("backend server", "backend_server.app"),
)


def register(sub: argparse._SubParsersAction, settings) -> None:
    up = sub.add_parser(
        "up", help="start LiGAN on this machine (embedded default)",
        description="Start the master daemon, the frontend server and local backends on this "
                    "machine with the default bundle, and print the URL to open. Ctrl-C stops "
                    "everything. The first start creates the administrator account 'admin' "
                    f"and prints its password ({ADMIN_PASSWORD_ENV} sets it instead).")
    up.add_argument("--check", action="store_true",
                    help="only report the parts and the bundle, start nothing")
    up.set_defaults(handler=_up)


def component_status() -> list[tuple[Component, bool]]:
    return [(c, _has_module(c.module)) for c in COMPONENTS]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_bundle(settings) -> tuple[bool, str]:
    """(usable, one line about the bundle backends will load)."""
    if not settings.bundle.exists():
        return False, (f"not there: {settings.bundle}. Sessions will fail to start until "
                       f"LIGAN_BUNDLE names a bundle (docs/models.md: train one, import "
                       f"NVIDIA's published networks with 'ligan bundle import', or make an "
                       f"untrained one for a look at the workflow with 'ligan bundle init')")
    from models.bundle import BundleError, read_manifest, verify_files

    try:
        manifest = read_manifest(settings.bundle)
        verify_files(settings.bundle, manifest)
    except BundleError as exc:
        return False, f"UNUSABLE: {exc}"
    parts = ", ".join(sorted(manifest.get("parts", {})))
    return True, (f"ready: {settings.bundle} ({manifest.get('name')}, "
                  f"{manifest.get('resolution')} px; parts: {parts or 'generator only'})")


def ensure_first_admin(settings) -> str | None:
    """Create the account ``admin`` when there is none yet; returns the password it got when
    it was generated here (to be shown once), else None."""
    from frontend_server.app import database_path
    from frontend_server.store import Store

    store = Store(database_path(settings))
    if store.count_users():
        return None
    chosen = os.environ.get(ADMIN_PASSWORD_ENV, "")
    password = chosen or secrets.token_urlsafe(12)
    store.add_user(ADMIN_NAME, password, is_admin=True)
    if chosen:
        return None
    note = Path(database_path(settings)).parent / "initial-admin-password"
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def _up(args: argparse.Namespace, settings) -> int:
    quiet_tensorflow_logs()
    print("LiGAN — embedded default (this machine, local processes)")
    print(f"  devices: {', '.join(describe_devices())}")
    missing = [c.name for c, present in component_status() if not present]
    for component, present in component_status():
        print(f"  {component.name:26s} {'ready' if present else 'MISSING (reinstall)'}")
    usable, line = check_bundle(settings)
    print(f"  {'model bundle':26s} {line}")
    if missing:
        print(f"\nCannot start: {', '.join(missing)} missing; run ./setup/install.sh again.")
        return 1
    if settings.bundle.exists() and not usable:
        return 1
    if args.check:
        return 0
    password = ensure_first_admin(settings)
    if password:
        print(f"\nFirst start: created the administrator account '{ADMIN_NAME}' with the "
              f"password\n    {password}\n(also in {settings.home}/frontend/initial-admin-"
              f"password; delete that file once you have noted the password).")
    from master_daemon.app import run_embedded

    return int(run_embedded(settings) or 0)
