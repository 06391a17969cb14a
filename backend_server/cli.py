"""``ligan backend serve``: start one backend for one session (by the master daemon, locally or
inside a SLURM job).

The per-job secret comes from the environment variable ``LIGAN_JOB_SECRET`` — never from the
command line, where ``ps`` and ``squeue`` would show it — and is removed from the environment
once read.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from models.precision import SETTINGS
from setup.config import Settings

if TYPE_CHECKING:
    from backend_server.backend import BackendConfig

SECRET_ENV = "LIGAN_JOB_SECRET"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """Add ``backend serve`` to the ``ligan`` parser."""
    backend = sub.add_parser("backend", help="the per-session backend server",
                             description="The per-session backend: one loaded model bundle "
                                         "behind an HTTP API and a task queue.")
    bsub = backend.add_subparsers(dest="backend_command", metavar="ACTION", required=True)
    serve = bsub.add_parser(
        "serve", help="serve one session (started by the master daemon)",
        description=f"Load a bundle, warm it, serve the backend API and report on-ready to the "
                    f"master daemon. The per-job secret is read from {SECRET_ENV}. SIGTERM "
                    f"shuts down cleanly: queued tasks are reported interrupted, a running one "
                    f"gets the grace period to finish.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--bundle", type=Path, default=settings.bundle,
                       help="bundle directory or packed bundle file (LIGAN_BUNDLE)")
    serve.add_argument("--session-id", required=True, help="the session this backend serves")
    serve.add_argument("--job-id", required=True, help="this backend's job id")
    serve.add_argument("--results-dir", type=Path, required=True,
                       help="the session's results folder (shared with the frontend)")
    serve.add_argument("--callback-url", required=True,
                       help="the master daemon's callback base URL (on-ready, on-progress and "
                            "on-result are POSTed below it)")
    serve.add_argument("--host", default=settings.backend_host,
                       help="address to listen on (0.0.0.0: all; the node name is reported)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    serve.add_argument("--idle-timeout", type=float,
                       default=settings.backend_idle_timeout,
                       help="exit after this many seconds without tasks (0: never)")
    serve.add_argument("--workers", type=int, default=settings.backend_workers,
                       help="worker threads running tasks side by side")
    serve.add_argument("--grace", type=float, default=settings.backend_grace,
                       help="seconds a running task may take to finish after SIGTERM")
    serve.add_argument("--batch-size", type=int,
                       default=settings.backend_batch_size,
                       help="faces rendered at once")
    serve.add_argument("--precision", choices=SETTINGS, default=settings.precision,
                       help="numeric precision faces are rendered in (LIGAN_PRECISION; auto: "
                            "bfloat16 on CPUs with AMX or AVX-512 BF16, else float32)")
    serve.set_defaults(handler=_serve,
                       result_faces=settings.backend_result_faces,
                       result_files=settings.backend_result_files)


def build_config(args: argparse.Namespace, secret: str) -> BackendConfig:
    """The backend's configuration from ``backend serve``'s arguments; ValueError names every
    argument that is wrong."""
    from backend_server.backend import BackendConfig
    from backend_server.tasks import BackendLimits

    problems = []
    if not secret:
        problems.append(f"{SECRET_ENV} is not set: the master daemon passes the per-job secret "
                        f"in this environment variable")
    for name in ("session_id", "job_id"):
        if not _ID.match(getattr(args, name)):
            problems.append(f"--{name.replace('_', '-')} must be 1-128 letters, digits and "
                            f"'._:@-', got {getattr(args, name)[:60]!r}")
    url = urlsplit(args.callback_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        problems.append(f"--callback-url must be an http:// or https:// URL, got "
                        f"{args.callback_url[:100]!r}")
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be from 0 to 65535, got {args.port}")
    if not args.idle_timeout >= 0:
        problems.append(f"--idle-timeout must be 0 (never) or more seconds, got "
                        f"{args.idle_timeout}")
    if not 1 <= args.workers <= 64:
        problems.append(f"--workers must be from 1 to 64, got {args.workers}")
    if not args.grace >= 0:
        problems.append(f"--grace must be 0 or more seconds, got {args.grace}")
    if not 1 <= args.batch_size <= 1024:
        problems.append(f"--batch-size must be from 1 to 1024, got {args.batch_size}")
    if problems:
        raise ValueError("; ".join(problems))
    return BackendConfig(
        bundle=args.bundle, session_id=args.session_id, job_id=args.job_id,
        results_dir=args.results_dir.expanduser(), callback_url=args.callback_url,
        secret=secret, host=args.host, port=args.port, idle_timeout=args.idle_timeout,
        workers=args.workers, grace=args.grace, precision=args.precision,
        limits=BackendLimits(batch_size=args.batch_size,
                             result_faces=max(0, int(args.result_faces)),
                             result_files=max(0, int(args.result_files))))


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from models.runtime import configure_tensorflow
    from setup.entry import CommandError

    secret = os.environ.pop(SECRET_ENV, "")
    try:
        config = build_config(args, secret)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from backend_server.server import serve_forever

    return serve_forever(config)
