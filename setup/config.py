"""LiGAN's configuration: one place, every setting overridable by an environment variable.

| variable                 | default                         | meaning                                   |
| ------------------------ | ------------------------------- | ----------------------------------------- |
| ``LIGAN_HOME``           | ``<checkout>/var``              | state, logs and results of this install   |
| ``LIGAN_BUNDLE``         | ``<checkout>/models/bundles/default`` | the model bundle servers and CLI use |
| ``LIGAN_LOG_LEVEL``      | ``INFO``                        | ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` |
| ``LIGAN_TF_INTRA_THREADS`` | ``0`` (TensorFlow decides)    | threads inside one TensorFlow operation   |
| ``LIGAN_TF_INTER_THREADS`` | ``1``                         | TensorFlow operations run side by side    |

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
                    tf_inter_threads=_int(env, "LIGAN_TF_INTER_THREADS", 1))
