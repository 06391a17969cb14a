"""``ligan up``: start the whole application on this machine with the embedded defaults.

The embedded default is: master daemon, frontend server and backends as local processes, on the
CPU, with the bundled default model. Parts that have not been built yet are reported as missing
— never imitated — and ``up`` starts what exists.
"""
from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass

from models.runtime import describe_devices, quiet_tensorflow_logs


@dataclass(frozen=True)
class Component:
    name: str
    module: str  # the module whose presence means the component is built
    arrives_with: str


COMPONENTS = (
    Component("master daemon", "master_daemon.app",
              "the issue 'Master daemon and scheduling'"),
    Component("frontend server + web UI", "frontend_server.app",
              "the issue 'Frontend server and web UI'"),
    Component("backend server", "backend_server.app", "the issue 'Backend server'"),
)


def register(sub: argparse._SubParsersAction, settings) -> None:
    up = sub.add_parser(
        "up", help="start LiGAN on this machine (embedded default)",
        description="Start the master daemon, frontend server and local backends on this "
                    "machine with the default bundle, and print the URL to open. Parts not yet "
                    "built are listed as missing.")
    up.set_defaults(handler=_up)


def component_status() -> list[tuple[Component, bool]]:
    return [(c, _has_module(c.module)) for c in COMPONENTS]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _up(args: argparse.Namespace, settings) -> int:
    quiet_tensorflow_logs()
    print("LiGAN — embedded default (this machine, local processes, CPU)")
    print(f"  devices: {', '.join(describe_devices())}")
    missing = []
    for component, present in component_status():
        state = "ready" if present else f"not built yet (arrives with {component.arrives_with})"
        print(f"  {component.name:26s} {state}")
        if not present:
            missing.append(component.name)
    if settings.bundle.exists():
        from models.bundle import BundleError, read_manifest, verify_files

        try:
            manifest = read_manifest(settings.bundle)
            verify_files(settings.bundle, manifest)
            print(f"  {'default model bundle':26s} ready: {settings.bundle} "
                  f"({manifest.get('name')}, {manifest.get('resolution')} px)")
        except BundleError as exc:
            print(f"  {'default model bundle':26s} UNUSABLE: {exc}")
            return 1
    else:
        print(f"  {'default model bundle':26s} not there yet: {settings.bundle} (trained and "
              f"bundled by the issue 'Training as cluster jobs'; set LIGAN_BUNDLE to use another)")
        missing.append("default model bundle")
    if "master daemon" in missing:
        print("\nNothing to serve yet: the web application starts once the master daemon exists.")
        print("What works today: 'ligan bundle init DIR' makes an untrained bundle, and "
              "'ligan generate --bundle DIR --seeds 0-7 --grid' renders from any bundle.")
        return 0
    # Contract for the master daemon: master_daemon.app.run_embedded(settings) starts the
    # daemon (which starts the frontend server and local backends), prints the URL and blocks.
    import importlib

    return int(importlib.import_module("master_daemon.app").run_embedded(settings) or 0)
