"""The error root of modelswap; every error carries a snake_case ``code``.

Core never decides an HTTP status: ``api/errors.py`` maps these types to
statuses in one table, and the CLI prints ``str(error)`` as one line.
"""

from __future__ import annotations


class ModelswapError(Exception):
    """Root of every error modelswap raises on purpose."""

    code = "modelswap_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ModelswapError, ValueError):
    """A request, argument or file is malformed."""

    code = "invalid_input"


class InvalidName(InvalidInput):
    """A model name or version id does not have the allowed shape."""

    code = "invalid_name"


class NotFound(ModelswapError, LookupError):
    """Something named does not exist."""

    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class Conflict(ModelswapError):
    """The request is valid but the store's state does not allow it."""

    code = "conflict"


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"


class VersionIsLive(Conflict):
    code = "version_is_live"


class IncompatibleSchema(Conflict):
    """The candidate's signature would break clients of the live version (see its diff)."""

    code = "incompatible_schema"


class ValidationFailed(ModelswapError):
    """A version failed validation (digests, load, smoke predict) and was refused."""

    code = "validation_failed"


class CorruptRegistry(ModelswapError):
    """``versions.json`` (or another store file) cannot be read; names the file."""

    code = "corrupt_registry"


class StoreBusy(ModelswapError, TimeoutError):
    """The store's writer lock could not be taken in time."""

    code = "store_busy"


class NotReady(ModelswapError):
    """No version of the model is loaded in this process yet."""

    code = "not_ready"


class InsufficientMemory(ModelswapError, MemoryError):
    """Loading would exceed the memory left under the process's cgroup limit."""

    code = "insufficient_memory"


class PredictionFailed(ModelswapError):
    """The model raised while predicting valid input."""

    code = "prediction_failed"


class Unauthorized(ModelswapError, PermissionError):
    """The admin token is missing or wrong."""

    code = "unauthorized"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class UnsupportedFormat(InvalidInput):
    """A model file in a format this entry point refuses (a pickle sent over HTTP)."""

    code = "unsupported_format"


class UntrustedTypes(ValidationFailed):
    """A skops file names types that neither skops nor the server's settings trust."""

    code = "untrusted_types"

    def __init__(self, message: str, types: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.types = types
