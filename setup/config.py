"""LiGAN's configuration: one place, every setting overridable by an environment variable.

| variable                 | default                         | meaning                                   |
| ------------------------ | ------------------------------- | ----------------------------------------- |
| ``LIGAN_HOME``           | ``<checkout>/var``              | state, logs and results of this install   |
| ``LIGAN_BUNDLE``         | ``<checkout>/models/bundles/default`` | the model bundle servers and CLI use |
| ``LIGAN_LOG_LEVEL``      | ``INFO``                        | ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` |
| ``LIGAN_LOG_MAX_MB``     | ``10``                          | size at which the daemon's log file is rotated |
| ``LIGAN_LOG_BACKUPS``    | ``5``                           | rotated log files kept beside it          |
| ``LIGAN_TF_INTRA_THREADS`` | ``0`` (TensorFlow decides)    | threads inside one TensorFlow operation   |
| ``LIGAN_TF_INTER_THREADS`` | ``1``; ``2`` in ``ligan train`` | TensorFlow operations run side by side (models/runtime.py) |
| ``LIGAN_PRECISION``      | ``auto``                        | ``float32``, ``bfloat16``, ``float16`` or ``auto`` (models/precision.py) |
| ``LIGAN_BACKEND_HOST``   | ``127.0.0.1``                   | address a backend listens on              |
| ``LIGAN_BACKEND_WORKERS`` | ``1``                          | task worker threads per backend           |
| ``LIGAN_BACKEND_IDLE_TIMEOUT`` | ``0`` (never)             | seconds without tasks before a backend exits |
| ``LIGAN_BACKEND_GRACE``  | ``20``                          | seconds a running task may finish after SIGTERM |
| ``LIGAN_BACKEND_BATCH_SIZE`` | ``8``                       | faces a backend renders at once           |
| ``LIGAN_BACKEND_RESULT_FACES`` | ``256``                   | face records carried in one task result   |
| ``LIGAN_BACKEND_RESULT_FILES`` | ``1000``                  | file paths carried in one task result     |
| ``LIGAN_HOST``           | ``127.0.0.1``                   | address the master daemon (the one public entry point) listens on |
| ``LIGAN_PORT``           | ``8700``                        | its port                                  |
| ``LIGAN_PUBLIC_URL``     | ``http://<host>:<port>``        | the URL users open (behind a reverse proxy: the proxy's) |
| ``LIGAN_SCHEDULER``      | ``local``                       | ``local`` (child processes) or ``slurm`` (``sbatch``) |
| ``LIGAN_MAX_BACKENDS``   | ``2``                           | backends running at once; more sessions wait in a queue |
| ``LIGAN_SESSION_IDLE_TIMEOUT`` | ``1800``                  | seconds without a task before a session's backend is cancelled |
| ``LIGAN_BACKEND_TIME_LIMIT`` | ``28800``                   | a backend job's time limit in seconds     |
| ``LIGAN_BACKEND_RENEW_BEFORE`` | ``900``                   | seconds before the time limit a replacement job is submitted |
| ``LIGAN_CALLBACK_HOST``  | (the daemon's host name)        | host backends use to reach the daemon's callbacks |
| ``LIGAN_SLURM_PARTITION`` | (Slurm's default)              | partition of backend and training jobs    |
| ``LIGAN_SLURM_ACCOUNT``  | (none)                          | account charged                           |
| ``LIGAN_SLURM_GPUS``     | ``1``                           | GPUs per backend job (``--gres=gpu:N``)   |
| ``LIGAN_SLURM_MEMORY_MB`` | ``16384``                      | memory per backend job                    |
| ``LIGAN_SLURM_CPUS``     | ``4``                           | CPUs per backend job                      |
| ``LIGAN_CONTAINER``      | (none)                          | ``apptainer:IMAGE`` or ``enroot:IMAGE`` to run jobs in |
| ``LIGAN_FRONTEND_PORT``  | ``0`` (any free port)           | loopback port of the frontend server behind the daemon |
| ``LIGAN_DAEMON_THREADS`` | ``300``                        | the daemon's HTTP threads; each open event stream holds one |
| ``LIGAN_SECURE_COOKIES`` | ``0``                           | ``1`` behind HTTPS: cookies get the Secure flag |
| ``LIGAN_TRUSTED_PROXIES`` | ``0``                          | reverse proxies in front of the daemon whose X-Forwarded-* headers are trusted |
| ``LIGAN_UPLOAD_MAX_MB``  | ``20``                          | largest photo upload                      |
| ``LIGAN_LOGIN_RATE_LIMIT`` | ``10 per minute``             | login attempts per client address and user name |
| ``LIGAN_WITNESS_LINK_DAYS`` | ``14``                       | days a mock-witness link stays open unless its test says otherwise |
| ``LIGAN_WITNESS_MAX_LINKS`` | ``500``                      | most links one mock-witness test may have |
| ``LIGAN_WITNESS_RATE_LIMIT`` | ``60 per minute``           | mock-witness answers accepted per client address |

docs/configuration.md repeats this table for operators; keep both in step.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping

CHECKOUT = Path(__file__).resolve().parent.parent
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """An environment variable holds a value LiGAN cannot use."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting with its default: the one place a default is written. ``Settings()`` is
    the configuration with no environment variable set (``public_url`` and ``callback_host``
    are derived by :func:`load_settings`); components take a ``Settings``, never re-read it."""

    home: Path = CHECKOUT / "var"
    bundle: Path = CHECKOUT / "models" / "bundles" / "default"
    log_level: str = "INFO"
    tf_intra_threads: int = 0
    tf_inter_threads: int | None = None  # None: by workload (models/runtime.py)
    precision: str = "auto"
    backend_host: str = "127.0.0.1"
    backend_workers: int = 1
    backend_idle_timeout: float = 0.0
    backend_grace: float = 20.0
    backend_batch_size: int = 8
    backend_result_faces: int = 256
    backend_result_files: int = 1000
    host: str = "127.0.0.1"
    port: int = 8700
    public_url: str = ""
    scheduler: str = "local"
    max_backends: int = 2
    session_idle_timeout: float = 1800.0
    backend_time_limit: int = 28800
    backend_renew_before: int = 900
    callback_host: str = ""
    slurm_partition: str = ""
    slurm_account: str = ""
    slurm_gpus: int = 1
    slurm_memory_mb: int = 16384
    slurm_cpus: int = 4
    container: str = ""
    frontend_port: int = 0
    daemon_threads: int = 300
    secure_cookies: bool = False
    trusted_proxies: int = 0
    upload_max_mb: int = 20
    login_rate_limit: str = "10 per minute"
    witness_link_days: float = 14.0
    witness_max_links: int = 500
    witness_rate_limit: str = "60 per minute"
    log_max_mb: int = 10
    log_backups: int = 5

    @property
    def log_file(self) -> Path:
        """The master daemon's log file (rotated at ``log_max_mb``, ``log_backups`` kept)."""
        return self.home / "logs" / "master_daemon.log"

    @property
    def results_root(self) -> Path:
        """Where each session's results folder lives: ``<results_root>/<session id>/``."""
        return self.home / "results"


DEFAULTS = Settings()  # what load_settings falls back to for a variable that is not set


# Handed by the master daemon to the frontend server it starts: the read end of a pipe whose
# write end only the daemon holds, so that the frontend ends when the daemon does.
LIFELINE_ENV = "LIGAN_LIFELINE_FD"


def to_env(settings: Settings) -> dict[str, str]:
    """The environment variables that give ``settings`` back through :func:`load_settings`:
    how a process passes its whole configuration — also values set in code, as tests do — to a
    child it starts (the daemon's frontend server)."""
    env = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None:  # unset: the child decides as this process did
            continue
        env[f"LIGAN_{field.name.upper()}"] = (("1" if value else "0") if isinstance(value, bool)
                                              else str(value))
    return env


def _env_name(field: str) -> str:
    """The environment variable of the Settings field ``field``."""
    return f"LIGAN_{field.upper()}"


def _int(env: Mapping[str, str], field: str, minimum: int = 0) -> int | None:
    """The integer setting ``field`` from its variable, else the field's default."""
    name, default = _env_name(field), getattr(DEFAULTS, field)
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], field: str, minimum: float = 0.0) -> float:
    """The number setting ``field`` from its variable, else the field's default."""
    name, default = _env_name(field), getattr(DEFAULTS, field)
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name} must be a finite number of at least {minimum:g}, got {raw}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (``os.environ`` by default), validated."""
    env = os.environ if env is None else env
    home = Path(env.get("LIGAN_HOME") or DEFAULTS.home).expanduser()
    bundle = Path(env.get("LIGAN_BUNDLE") or DEFAULTS.bundle)
    level = (env.get("LIGAN_LOG_LEVEL") or DEFAULTS.log_level).upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LIGAN_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return Settings(home=home, bundle=bundle.expanduser(), log_level=level,
                    tf_intra_threads=_int(env, "tf_intra_threads"),
                    tf_inter_threads=_int(env, "tf_inter_threads"),
                    precision=_precision(env),
                    backend_host=(env.get("LIGAN_BACKEND_HOST") or DEFAULTS.backend_host).strip(),
                    backend_workers=_int(env, "backend_workers", minimum=1),
                    backend_idle_timeout=_float(env, "backend_idle_timeout"),
                    backend_grace=_float(env, "backend_grace"),
                    backend_batch_size=_int(env, "backend_batch_size", minimum=1),
                    backend_result_faces=_int(env, "backend_result_faces"),
                    backend_result_files=_int(env, "backend_result_files"),
                    log_max_mb=_int(env, "log_max_mb", minimum=1),
                    log_backups=_int(env, "log_backups", minimum=1),
                    **_server_settings(env))


SCHEDULERS = ("local", "slurm")


def _precision(env: Mapping[str, str]) -> str:
    from models.precision import PrecisionError, check_precision

    try:
        return check_precision(env.get("LIGAN_PRECISION") or DEFAULTS.precision)
    except PrecisionError as exc:
        raise SettingsError(f"LIGAN_PRECISION: {exc}") from None


def _server_settings(env: Mapping[str, str]) -> dict:
    """The master daemon's, the frontend's and the SLURM job settings."""
    host = (env.get("LIGAN_HOST") or DEFAULTS.host).strip()
    port = _int(env, "port", minimum=1)
    if port > 65535:
        raise SettingsError(f"LIGAN_PORT must be a port number (1-65535), got {port}")
    public_url = (env.get("LIGAN_PUBLIC_URL") or "").strip().rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise SettingsError(f"LIGAN_PUBLIC_URL must start with http:// or https://, got "
                            f"{public_url!r}")
    scheduler = (env.get("LIGAN_SCHEDULER") or DEFAULTS.scheduler).strip().lower()
    if scheduler not in SCHEDULERS:
        raise SettingsError(f"LIGAN_SCHEDULER must be one of {', '.join(SCHEDULERS)}, got "
                            f"{scheduler!r}")
    container = (env.get("LIGAN_CONTAINER") or "").strip()
    if container and container.split(":", 1)[0] not in ("apptainer", "enroot"):
        raise SettingsError(f"LIGAN_CONTAINER must be apptainer:IMAGE or enroot:IMAGE, got "
                            f"{container!r}")
    frontend_port = _int(env, "frontend_port")
    if frontend_port > 65535:
        raise SettingsError(f"LIGAN_FRONTEND_PORT must be 0-65535, got {frontend_port}")
    secure = (env.get("LIGAN_SECURE_COOKIES") or ("1" if DEFAULTS.secure_cookies else "0"))
    secure = secure.strip().lower()
    if secure not in ("0", "1", "true", "false", "yes", "no"):
        raise SettingsError(f"LIGAN_SECURE_COOKIES must be 0 or 1, got {secure!r}")
    time_limit = _int(env, "backend_time_limit", minimum=60)
    renew_before = _int(env, "backend_renew_before")
    if renew_before >= time_limit:
        raise SettingsError(f"LIGAN_BACKEND_RENEW_BEFORE ({renew_before} s) must be shorter than "
                            f"LIGAN_BACKEND_TIME_LIMIT ({time_limit} s): a backend would be "
                            f"replaced as soon as it starts, and its replacement too")
    return dict(
        host=host, port=port, public_url=public_url or f"http://{host}:{port}",
        scheduler=scheduler,
        max_backends=_int(env, "max_backends", minimum=1),
        session_idle_timeout=_float(env, "session_idle_timeout"),
        backend_time_limit=time_limit, backend_renew_before=renew_before,
        callback_host=(env.get("LIGAN_CALLBACK_HOST") or "").strip(),
        slurm_partition=(env.get("LIGAN_SLURM_PARTITION") or "").strip(),
        slurm_account=(env.get("LIGAN_SLURM_ACCOUNT") or "").strip(),
        slurm_gpus=_int(env, "slurm_gpus"),
        slurm_memory_mb=_int(env, "slurm_memory_mb", minimum=1),
        slurm_cpus=_int(env, "slurm_cpus", minimum=1),
        container=container,
        frontend_port=frontend_port,
        daemon_threads=_int(env, "daemon_threads", minimum=8),
        secure_cookies=secure in ("1", "true", "yes"),
        trusted_proxies=_int(env, "trusted_proxies"),
        upload_max_mb=_int(env, "upload_max_mb", minimum=1),
        login_rate_limit=_rate(env, "login_rate_limit"),
        witness_link_days=_float(env, "witness_link_days", minimum=0.001),
        witness_max_links=_int(env, "witness_max_links", minimum=1),
        witness_rate_limit=_rate(env, "witness_rate_limit"),
    )


def _rate(env: Mapping[str, str], field: str) -> str:
    """A rate such as ``10 per minute`` or ``5/second`` (flask-limiter's notation)."""
    import re

    name = _env_name(field)
    raw = (env.get(name) or getattr(DEFAULTS, field)).strip()
    if not re.fullmatch(r"\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?", raw):
        raise SettingsError(f"{name} must look like '10 per minute' or '5/second', got {raw!r}")
    return raw
