"""The error root of modelswap; every error carries a snake_case ``code``. Also the one
warning it gives (NoReferenceWarning), light enough for the HTTP client to import.

Core never decides an HTTP status: ``api/errors.py`` maps these types to
statuses in one table, and the CLI prints ``str(error)`` as one line.
"""

from __future__ import annotations

import errno


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


class VersionProtected(Conflict):
    """The version is the rollback target or an alias names it; delete refuses it."""

    code = "version_protected"


class IncompatibleSchema(Conflict):
    """The candidate's signature would break clients of the live version (see its diff)."""

    code = "incompatible_schema"


class ValidationFailed(ModelswapError):
    """A version failed validation (digests, load, smoke predict) and was refused."""

    code = "validation_failed"


class UnsafePath(ValidationFailed):
    """A file or directory inside the store is a symlink: modelswap never follows one
    (only ``current`` may be a link), so nothing outside the root is ever read."""

    code = "symlink_refused"


class StorageError(ModelswapError):
    """The filesystem under the store refused a read or write (the message says how, never where)."""

    code = "storage_error"


class StorageFull(StorageError):
    code = "storage_full"


class StoreReadOnly(StorageError):
    code = "store_read_only"


class StoreNotWritable(StorageError):
    code = "store_not_writable"


class StoreNotReadable(StorageError):
    """A read of the store was refused (EACCES/EPERM): a file mounted for another user."""

    code = "store_not_readable"


def storage_error(exc: OSError, *, reading: bool = False) -> StorageError:
    """The StorageError an OSError from the store means: a full disk or quota, a read-only
    mount, missing permission (to read, when ``reading``, else to write), or something
    else (the path stays in the server log)."""
    refused = StoreNotReadable if reading else StoreNotWritable
    kinds: dict[int, type[StorageError]] = {
        errno.ENOSPC: StorageFull,
        errno.EDQUOT: StorageFull,
        errno.EFBIG: StorageFull,
        errno.EROFS: StoreReadOnly,
        errno.EACCES: refused,
        errno.EPERM: refused,
    }
    kind = kinds.get(exc.errno or 0, StorageError)
    reason = exc.strerror or type(exc).__name__
    what = "a read" if reading else "the operation"
    return kind(f"the model store's filesystem refused {what}: {reason}")


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


class PredictTimeout(ModelswapError, TimeoutError):
    """The model did not answer within MODELSWAP_PREDICT_TIMEOUT."""

    code = "predict_timeout"


class PredictionFailed(ModelswapError):
    """The model raised while predicting valid input."""

    code = "prediction_failed"


class Unauthorized(ModelswapError, PermissionError):
    """The token is missing, unknown or expired."""

    code = "unauthorized"


class TokenExpired(Unauthorized):
    """A known token past its expiry."""


class Forbidden(ModelswapError, PermissionError):
    """A known token asked for something outside its role or its models."""

    code = "forbidden"

    def __init__(self, message: str, role: str) -> None:
        super().__init__(message)
        self.role = role


class TooManyAttempts(ModelswapError):
    """This client address failed to authenticate too often; it may retry after ``retry_after`` s."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokensUnreadable(ModelswapError):
    """The tokens file cannot be read or parsed: its tokens are refused until it is fixed."""

    code = "tokens_unreadable"


class AdminDisabled(ModelswapError):
    """The admin API is off in this process: no token is configured and the store, being
    read-only, could not take a generated one. No token a client sends can change that."""

    code = "admin_disabled"


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


class NoReferenceWarning(UserWarning):
    """A version was published without a reference: its drift cannot be monitored.

    Said once per publish (Store.publish, Client.upload; the CLI prints it instead),
    because a copied example without ``reference=`` otherwise leaves drift monitoring
    off with no word why: the monitor only says ``"reference": false``."""


def no_reference(how: str) -> str:
    """What a publish without a reference says; ``how`` names the way to give one."""
    return f"no reference: drift monitoring is off for this version; pass {how} (the rows it was trained on)"
