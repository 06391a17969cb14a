"""Configuration: every setting documented with its default (docs/configuration.md and
setup/config.py's own table), and settings that cannot work together refused."""
from __future__ import annotations

import dataclasses
import re

from setup import config
from tests.conftest import REPO

# Defaults that depend on the checkout or on other settings, written as words in the tables.
DERIVED = {"home", "bundle", "public_url", "callback_host"}


def _rows(text: str) -> dict[str, str]:
    """``LIGAN_X`` → the default column of the table rows in ``text``."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3:
            name = cells[0].replace("`", "")
            if re.fullmatch(r"LIGAN_[A-Z_]+", name):
                rows[name] = cells[1].replace("`", "")
    return rows


def test_every_setting_is_documented_with_its_default():
    defaults = config.load_settings({})
    tables = {"docs/configuration.md": _rows((REPO / "docs" / "configuration.md").read_text()),
              "setup/config.py": _rows(config.__doc__)}
    for field in dataclasses.fields(config.Settings):
        name = f"LIGAN_{field.name.upper()}"
        value = getattr(defaults, field.name)
        for where, rows in tables.items():
            assert name in rows, f"{name} is missing from the table in {where}"
            if field.name in DERIVED or value in ("", None):
                # empty or unset defaults read "(none)", "1; 2 in ligan train" and the like
                continue
            shown = ("1" if value else "0") if isinstance(value, bool) else str(value)
            if isinstance(value, float) and value.is_integer():
                shown = str(int(value))
            assert rows[name].split()[0] == shown.split()[0], \
                f"{where} gives {name} the default {rows[name]!r}, setup/config.py {shown!r}"


def test_renewal_must_come_before_the_time_limit():
    import pytest

    with pytest.raises(config.SettingsError, match="must be shorter than LIGAN_BACKEND_TIME"):
        config.load_settings({"LIGAN_BACKEND_TIME_LIMIT": "600",
                              "LIGAN_BACKEND_RENEW_BEFORE": "600"})
    assert config.load_settings({"LIGAN_BACKEND_TIME_LIMIT": "600",
                                 "LIGAN_BACKEND_RENEW_BEFORE": "599"}).backend_renew_before == 599


def test_each_default_is_written_once():
    """``Settings``' field defaults are the defaults: reading an empty environment gives them
    back (only the derived public URL differs), and the backend's limits start from them."""
    from backend_server.tasks import BackendLimits

    loaded = config.load_settings({})
    assert dataclasses.replace(loaded, public_url="") == config.Settings() == config.DEFAULTS
    assert loaded.public_url == f"http://{loaded.host}:{loaded.port}"
    limits = BackendLimits()
    assert (limits.batch_size, limits.result_faces, limits.result_files) == (
        config.DEFAULTS.backend_batch_size, config.DEFAULTS.backend_result_faces,
        config.DEFAULTS.backend_result_files)
