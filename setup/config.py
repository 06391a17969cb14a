"""LiGAN's configuration: one place, every setting overridable by an environment variable.

| variable                 | default                         | meaning                                   |
| ------------------------ | ------------------------------- | ----------------------------------------- |
| ``LIGAN_HOME``           | ``<checkout>/var``              | state, logs and results of this install   |
| ``LIGAN_BUNDLE``         | ``<checkout>/models/bundles/default`` | the model bundle servers and CLI use |
| ``LIGAN_LOG_LEVEL``      | ``INFO``                        | ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` |
| ``LIGAN_TF_INTRA_THREADS`` | ``0`` (TensorFlow decides)    | threads inside one TensorFlow operation   |
| ``LIGAN_TF_INTER_THREADS`` | ``1``                         | TensorFlow operations run side by side    |
| ``LIGAN_BACKEND_HOST``   | ``127.0.0.1``                   | address a backend listens on              |
| ``LIGAN_BACKEND_WORKERS`` | ``1``                          | task worker threads per backend           |
| ``LIGAN_BACKEND_IDLE_TIMEOUT`` | ``0`` (never)             | seconds without tasks before a backend exits |
| ``LIGAN_BACKEND_GRACE``  | ``20``                          | seconds a running task may finish after SIGTERM |
| ``LIGAN_BACKEND_BATCH_SIZE`` | ``8``                       | faces a backend renders at once           |
| ``LIGAN_BACKEND_RESULT_FACES`` | ``256``                   | face records carried in one task result   |

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
    home: Path
    bundle: Path
    log_level: str
    tf_intra_threads: int
    tf_inter_threads: int
    backend_host: str = "127.0.0.1"
    backend_workers: int = 1
    backend_idle_timeout: float = 0.0
    backend_grace: float = 20.0
    backend_batch_size: int = 8
    backend_result_faces: int = 256


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
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


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
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
    home = Path(env.get("LIGAN_HOME") or CHECKOUT / "var").expanduser()
    bundle = Path(env.get("LIGAN_BUNDLE") or CHECKOUT / "models" / "bundles" / "default")
    level = (env.get("LIGAN_LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LIGAN_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return Settings(home=home, bundle=bundle.expanduser(), log_level=level,
                    tf_intra_threads=_int(env, "LIGAN_TF_INTRA_THREADS", 0),
                    tf_inter_threads=_int(env, "LIGAN_TF_INTER_THREADS", 1),
                    backend_host=(env.get("LIGAN_BACKEND_HOST") or "127.0.0.1").strip(),
                    backend_workers=_int(env, "LIGAN_BACKEND_WORKERS", 1, minimum=1),
                    backend_idle_timeout=_float(env, "LIGAN_BACKEND_IDLE_TIMEOUT", 0.0),
                    backend_grace=_float(env, "LIGAN_BACKEND_GRACE", 20.0),
                    backend_batch_size=_int(env, "LIGAN_BACKEND_BATCH_SIZE", 8, minimum=1),
                    backend_result_faces=_int(env, "LIGAN_BACKEND_RESULT_FACES", 256))
