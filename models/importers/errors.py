"""Errors raised while importing published StyleGAN2 networks.

Every message names the offending global, variable or setting, because the person running
``ligan bundle import`` has only the pickle and the message to go on.
"""
from __future__ import annotations

REFUSAL = ("refusing to load {module}.{name} from the pickle: a pickle is code; only StyleGAN2 "
           "network state is accepted")


class NetworkImportError(Exception):
    """The source file cannot be imported; the message says why."""


class RefusedGlobalError(NetworkImportError, ImportError):
    """The pickle references a global outside the allow-list (a pickle can run any callable it
    names, so anything but the known StyleGAN2 state is refused before it is called)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name_ = module, name
        super().__init__(REFUSAL.format(module=module, name=name))


class SourceFormatError(NetworkImportError):
    """The pickle is readable but is not a supported StyleGAN2 network (or is damaged)."""


class MappingError(NetworkImportError):
    """The network's variables do not map one-to-one onto ours (missing, extra or misshapen)."""
