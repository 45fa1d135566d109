"""The exception hierarchy of recship.

Every error the library raises on purpose derives from `RecshipError`, so the
CLI and the server can tell expected failures (bad input, bad config) from
bugs. Messages say what failed, with which value, where, and what to do.
"""


class RecshipError(Exception):
    """Base of every error recship raises on purpose."""


class ConfigError(RecshipError):
    """A pipeline or service config is invalid (names file, line and field)."""


class DataError(RecshipError):
    """Input data is unreadable or lacks what the config needs."""


class FeatureError(RecshipError):
    """Feature generation failed for a feature or a value."""


class ModelError(RecshipError):
    """A model cannot be built from its config."""


class CheckpointError(RecshipError):
    """A checkpoint is missing, incomplete or does not match the model."""


class ExportError(RecshipError):
    """An export could not be written or failed its own verification."""


class ServingError(RecshipError):
    """A request could not be served; `status` is the HTTP status to answer."""

    status: int = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequestError(ServingError):
    """The request is malformed or names unknown features (HTTP 400)."""

    status = 400


class OverloadedError(ServingError):
    """The server's work queue is full (HTTP 503)."""

    status = 503
