"""Strict JSON at every server's edge: the one parser and serializer of the three servers.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` (which are not JSON) and
raises ``RecursionError`` on deeply nested input; it also writes non-finite floats as those
same non-JSON words, which browsers then fail to parse. Here, non-finite numbers and nesting
past :data:`MAX_DEPTH` are refused with a ``ValueError`` whose message says what to send, and
serializing a non-finite float is an error instead of invalid output.
"""
from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider

# Deeper than any request LiGAN defines (a task's parameters nest three levels); deep enough
# that no client has a reason to send more, shallow enough to stay far from Python's limit.
MAX_DEPTH = 64
# The largest JSON request body any server takes: requests are small (uploads travel as files,
# never in JSON), so one limit serves the frontend, the daemon and the backends.
MAX_JSON_BODY_BYTES = 1 << 20


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number; send finite numbers")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of ``value`` (0 for a scalar), counting no further than ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > limit:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def loads_strict(data: str | bytes) -> Any:
    """Parse JSON text, refusing NaN/Infinity and nesting deeper than :data:`MAX_DEPTH` with
    a ``ValueError`` that names the problem (``json.JSONDecodeError`` is one)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the body is not UTF-8 text") from None
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"the JSON nests too deeply (more than {MAX_DEPTH} levels)") from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(f"the JSON nests too deeply (more than {MAX_DEPTH} levels)")
    return value


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that refuses non-finite floats (``ValueError``) instead of writing NaN."""
    return json.dumps(value, allow_nan=False, **kwargs)


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON with :func:`loads_strict` for request bodies and no NaN in responses."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_strict(s)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def use_strict_json(app) -> None:
    """Make ``app`` parse and write JSON strictly (``request.get_json``, ``jsonify``)."""
    app.json_provider_class = StrictJSONProvider
    app.json = StrictJSONProvider(app)
