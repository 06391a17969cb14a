"""Checking task parameters: every rejection names the parameter and says what to change.

Status codes (see docs/backend.md):

* 400 — the request is malformed: not JSON, a value of the wrong type, an unknown parameter;
* 404 — it names something that does not exist (a task, a face);
* 409 — it conflicts with the state of the backend (shutting down, a folder already used);
* 413 — the body is too large;
* 422 — well-formed but unusable: a number out of range, NaN, an unavailable task type.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from setup.strict_json import loads_strict


class RequestError(Exception):
    """A request the backend refuses; ``status`` is the HTTP status, the message is for humans."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(RequestError):
    status = 400


class NotFound(RequestError):
    status = 404


class Conflict(RequestError):
    status = 409


class Unprocessable(RequestError):
    status = 422


def parse_json_body(data: bytes) -> Any:
    """Strict JSON: NaN, Infinity and -Infinity (which Python's parser accepts) are refused."""
    if not data:
        raise BadRequest("the body is empty; send a JSON object like "
                         '{"type": "random", "params": {"amount": 8}}')
    try:
        return loads_strict(data)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


class Params:
    """Typed access to a task's ``params`` object; remembers which names were read so that
    :meth:`finish` can reject unknown ones (a typo must not be silently ignored)."""

    def __init__(self, raw: Any, task_type: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise BadRequest(f"params must be a JSON object, got {_kind(raw)}")
        self.raw = dict(raw)
        self.task_type = task_type
        self._read: set[str] = set()

    def _get(self, name: str) -> Any:
        self._read.add(name)
        return self.raw.get(name)

    def integer(self, name: str, *, minimum: int, maximum: int, default: int | None = None,
                required: bool = False, hint: str = "") -> int | None:
        value = self._get(name)
        if value is None:
            if required:
                raise BadRequest(f"params.{name} is required: an integer from {minimum} to "
                                 f"{maximum}{hint}")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"params.{name} must be an integer from {minimum} to {maximum}, "
                             f"got {_kind(value)}")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise BadRequest(f"params.{name} must be a whole number from {minimum} to "
                                 f"{maximum}, got {value}")
            value = int(value)
        if not minimum <= value <= maximum:
            raise Unprocessable(f"params.{name} must be from {minimum} to {maximum}, got "
                                f"{value}{hint}")
        return value

    def number(self, name: str, *, minimum: float, maximum: float,
               default: float | None = None, required: bool = False,
               hint: str = "") -> float | None:
        value = self._get(name)
        if value is None:
            if required:
                raise BadRequest(f"params.{name} is required: a number from {minimum} to "
                                 f"{maximum}{hint}")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"params.{name} must be a number from {minimum} to {maximum}, got "
                             f"{_kind(value)}")
        value = float(value)
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise Unprocessable(f"params.{name} must be a number from {minimum} to {maximum}, "
                                f"got {value}{hint}")
        return value

    def string(self, name: str, *, choices: Iterable[str] | None = None,
               pattern: re.Pattern | None = None, default: str | None = None,
               required: bool = False, what: str = "a string") -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                raise BadRequest(f"params.{name} is required: {what}")
            return default
        if not isinstance(value, str):
            raise BadRequest(f"params.{name} must be {what}, got {_kind(value)}")
        if choices is not None:
            choices = tuple(choices)
            if value not in choices:
                raise Unprocessable(f"params.{name} must be one of {', '.join(choices)}, got "
                                    f"{_short(value)!r}")
        if pattern is not None and not pattern.match(value):
            raise BadRequest(f"params.{name} must be {what}, got {_short(value)!r}")
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise BadRequest(f"params.{name} must be true or false, got {_kind(value)}")
        return value

    def number_list(self, name: str, *, minimum: float, maximum: float, min_items: int,
                    max_items: int, default: list[float]) -> list[float]:
        value = self._get(name)
        if value is None:
            return list(default)
        if (not isinstance(value, list) or not min_items <= len(value) <= max_items
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
            raise BadRequest(f"params.{name} must be a list of {min_items} to {max_items} "
                             f"numbers, got {_kind(value)}")
        if any(not math.isfinite(v) or not minimum <= v <= maximum for v in value):
            raise Unprocessable(f"params.{name}: every number must be from {minimum} to "
                                f"{maximum}")
        return [float(v) for v in value]

    def parsed(self, name: str, parse: Callable[[Any], Any]) -> Any:
        """A value checked by a parser of ``models/`` (it raises ValueError with the reason):
        one place owns the format, and its message reaches the client as a 422."""
        try:
            return parse(self._get(name))
        except ValueError as exc:
            raise Unprocessable(f"params.{name}: {exc}") from None

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "none"
            raise BadRequest(f"unknown parameter(s) for task type {self.task_type}: "
                             f"{', '.join(_short(u) for u in unknown)} (known: {known})")


def results_path(results_dir: Path, value: str, name: str) -> Path:
    """A path given relative to the session's results folder, refused if it leaves the folder
    (absolute paths, ``..``, symbolic links pointing outside)."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"params.{name} must be a path relative to the session's results "
                         f"folder")
    if "\x00" in value or len(value) > 1024:
        raise BadRequest(f"params.{name} is not a usable path")
    if os.path.isabs(value) or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise Unprocessable(f"params.{name} must be relative to the session's results folder, "
                            f"got the absolute path {_short(value)!r}")
    root = results_dir.resolve()
    target = (root / value).resolve()
    if target != root and root not in target.parents:
        raise Unprocessable(f"params.{name} points outside the session's results folder "
                            f"({_short(value)!r}); give a path inside it, without '..'")
    return target


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {_short(value)!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _short(text: str, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"
