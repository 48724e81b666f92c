"""Errors with a reason code: stages raise these for bad input; the flow turns them into rejects."""

from __future__ import annotations


class HiwError(Exception):
    """Base class; ``str(err)`` is a one-line message fit for a user."""


class ConfigError(HiwError):
    """Invalid configuration or usage (the CLI exits with code 2)."""


class StageError(HiwError):
    """A video or clip cannot go through a stage; becomes a row in ``rejects``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
