"""Settings: one frozen value built from the environment, the only reader of MODELSWAP_*."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from modelswap.core.errors import InvalidInput
from modelswap.core.store.formats import SKLEARN, expand_trusted
from modelswap.core.store.ids import validate_model_name
from modelswap.core.store.layout import TOKENS_FILE

WATCH_MODES = ("auto", "poll", "off")
LOG_FORMATS = ("text", "json")
MiB, GiB = 1024**2, 1024**3
# A fully qualified Python name, as skops.io.get_untrusted_types spells a type.
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    root: Path = Path("models")
    models: tuple[str, ...] | None = None
    default_model: str | None = None
    poll_interval: float = 1.0
    watch: str = "auto"
    keep_loaded: int = 2
    admin_token: str | None = None
    admin_token_file: Path | None = None
    tokens_file: Path | None = None  # named tokens; None: <root>/.tokens.json (tokens_path)
    client_token: str | None = None  # what the CLI's --url mode sends (MODELSWAP_TOKEN)
    max_body_bytes: int = 10 * 1024 * 1024
    max_upload_bytes: int = 1024 * 1024 * 1024
    max_rows: int = 10_000
    strict_versions: bool = False
    protect_reads: bool = False
    protect_predict: bool = False
    auth_failures_per_minute: int = 20  # failed authentications from one address before a minute's 429
    url: str | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    lock_timeout: float = 30.0
    batch_max_rows: int = 256
    batch_wait_ms: float = 0.0
    batch_hand_off_ms: float = 2.0
    batch_inline_ms: float = 1.0
    model_threads: int = 1
    lock_kind: str = "flock"
    lock_stale_after: float = 60.0
    multiproc_dir: Path | None = None
    extra_columns: str = "refuse"
    predict_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000
    trusted_types: tuple[str, ...] = ()
    share_memory: bool = True
    allow_pickle_uploads: bool = False
    upload_validation_timeout: float = 60.0
    upload_validation_memory: int = 4 * GiB
    monitor: bool = True
    monitor_window: float = 300.0
    monitor_flush: float = 10.0
    monitor_retention: float = 3600.0
    prediction_log: Path | None = Path("prediction-log")
    prediction_log_sample: float = 1.0
    prediction_log_inputs: bool = True
    prediction_log_max_bytes: int = 64 * MiB
    prediction_log_files: int = 10
    shadow_queue: int = 1000
    lease_seconds: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        models = get("MODELSWAP_MODELS")
        default_model = get("MODELSWAP_DEFAULT_MODEL")
        token_file = get("MODELSWAP_ADMIN_TOKEN_FILE")
        tokens_file = get("MODELSWAP_TOKENS_FILE")
        multiproc = get("PROMETHEUS_MULTIPROC_DIR") or get("prometheus_multiproc_dir")
        settings = cls(
            root=Path(get("MODELSWAP_ROOT") or "models"),
            models=tuple(validate_model_name(m.strip()) for m in models.split(",") if m.strip()) if models else None,
            default_model=validate_model_name(default_model) if default_model else None,
            poll_interval=_number(env, "MODELSWAP_POLL_INTERVAL", 1.0, minimum=0.01),
            watch=_choice(env, "MODELSWAP_WATCH", "auto", WATCH_MODES),
            keep_loaded=int(_number(env, "MODELSWAP_KEEP_LOADED", 2, minimum=1)),
            admin_token=get("MODELSWAP_ADMIN_TOKEN"),
            admin_token_file=Path(token_file) if token_file else None,
            tokens_file=Path(tokens_file) if tokens_file else None,
            client_token=get("MODELSWAP_TOKEN"),
            max_body_bytes=int(_number(env, "MODELSWAP_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1)),
            max_upload_bytes=int(_number(env, "MODELSWAP_MAX_UPLOAD_BYTES", 1024**3, minimum=1)),
            max_rows=int(_number(env, "MODELSWAP_MAX_ROWS", 10_000, minimum=1)),
            strict_versions=_flag(env, "MODELSWAP_STRICT_VERSIONS"),
            protect_reads=_flag(env, "MODELSWAP_PROTECT_READS"),
            protect_predict=_flag(env, "MODELSWAP_PROTECT_PREDICT"),
            auth_failures_per_minute=_whole(env, "MODELSWAP_AUTH_FAILURES_PER_MINUTE", 20, minimum=1),
            url=get("MODELSWAP_URL"),
            log_format=_choice(env, "MODELSWAP_LOG_FORMAT", "text", LOG_FORMATS),
            log_level=(get("MODELSWAP_LOG_LEVEL") or "INFO").upper(),
            lock_timeout=_number(env, "MODELSWAP_LOCK_TIMEOUT", 30.0, minimum=0.0),
            batch_max_rows=int(_number(env, "MODELSWAP_BATCH_MAX_ROWS", 256, minimum=1)),
            batch_wait_ms=_number(env, "MODELSWAP_BATCH_WAIT_MS", 0.0, minimum=0.0),
            batch_hand_off_ms=_number(env, "MODELSWAP_BATCH_HANDOFF_MS", 2.0, minimum=0.0),
            batch_inline_ms=_number(env, "MODELSWAP_BATCH_INLINE_MS", 1.0, minimum=0.0),
            model_threads=_whole(env, "MODELSWAP_MODEL_THREADS", 1, minimum=1),
            lock_kind=_choice(env, "MODELSWAP_LOCK", "flock", ("flock", "soft")),
            lock_stale_after=_number(env, "MODELSWAP_LOCK_STALE_SECONDS", 60.0, minimum=1.0),
            multiproc_dir=Path(multiproc) if multiproc else None,
            extra_columns=_choice(env, "MODELSWAP_EXTRA_COLUMNS", "refuse", ("refuse", "ignore")),
            predict_timeout=_number(env, "MODELSWAP_PREDICT_TIMEOUT", 30.0, minimum=0.001),
            header_timeout=_number(env, "MODELSWAP_HEADER_TIMEOUT", 10.0, minimum=0.1),
            body_timeout=_number(env, "MODELSWAP_BODY_TIMEOUT", 30.0, minimum=0.1),
            keepalive_timeout=_number(env, "MODELSWAP_KEEPALIVE_TIMEOUT", 5.0, minimum=0.1),
            max_connections=_whole(env, "MODELSWAP_MAX_CONNECTIONS", 1000, minimum=1),
            trusted_types=_type_names(env, "MODELSWAP_TRUSTED_TYPES"),
            share_memory=_flag(env, "MODELSWAP_SHARE_MEMORY", default=True),
            allow_pickle_uploads=_flag(env, "MODELSWAP_ALLOW_PICKLE_UPLOADS"),
            upload_validation_timeout=_number(env, "MODELSWAP_UPLOAD_VALIDATION_TIMEOUT", 60.0, minimum=1.0),
            upload_validation_memory=_size(env, "MODELSWAP_UPLOAD_VALIDATION_MEMORY", 4 * GiB, minimum=512 * MiB),
            monitor=_flag(env, "MODELSWAP_MONITOR", default=True),
            monitor_window=_number(env, "MODELSWAP_MONITOR_WINDOW", 300.0, minimum=5.0),
            monitor_flush=_number(env, "MODELSWAP_MONITOR_FLUSH", 10.0, minimum=0.05),
            monitor_retention=_number(env, "MODELSWAP_MONITOR_RETENTION", 3600.0, minimum=60.0),
            prediction_log=_optional_path(get("MODELSWAP_PREDICTION_LOG"), Path("prediction-log")),
            prediction_log_sample=_fraction(env, "MODELSWAP_PREDICTION_LOG_SAMPLE", 1.0),
            prediction_log_inputs=_flag(env, "MODELSWAP_PREDICTION_LOG_INPUTS", default=True),
            prediction_log_max_bytes=_size(env, "MODELSWAP_PREDICTION_LOG_MAX_BYTES", 64 * MiB, minimum=4096),
            prediction_log_files=_whole(env, "MODELSWAP_PREDICTION_LOG_FILES", 10, minimum=1),
            shadow_queue=_whole(env, "MODELSWAP_SHADOW_QUEUE", 1000, minimum=1),
            lease_seconds=_number(env, "MODELSWAP_LEASE_SECONDS", 15.0, minimum=1.0),
        )
        return settings

    @property
    def tokens_path(self) -> Path:
        """The tokens file: MODELSWAP_TOKENS_FILE, else ``<root>/.tokens.json``."""
        return self.tokens_file if self.tokens_file is not None else self.root / TOKENS_FILE

    def with_root(self, root: Path) -> Settings:
        return replace(self, root=Path(root))


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name}={raw!r} is not a number") from exc
    if not value >= minimum:  # also rejects NaN
        raise InvalidInput(f"{name}={raw!r} must be at least {minimum}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _number(env, name, default, minimum=minimum)
    if not math.isfinite(value) or value != int(value):
        raise InvalidInput(f"{name}={env.get(name)!r} must be a whole number")
    return int(value)


def _size(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    """Bytes: a whole number, or with a binary suffix (512M, 4G, 4GiB)."""
    raw = (env.get(name) or "").strip()
    if raw == "":
        return default
    match = _SIZE.fullmatch(raw)
    if match is None:
        raise InvalidInput(f"{name}={raw!r} is not a size in bytes (e.g. 4294967296, 512M, 4G)")
    unit = match.group(2).lower()
    value = int(float(match.group(1)) * (1024 ** ("kmgt".index(unit) + 1) if unit else 1))
    if value < minimum:
        raise InvalidInput(f"{name}={raw!r} must be at least {minimum // MiB} MiB")
    return value


def _type_names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of fully qualified type names (module.Class), or the word
    ``sklearn`` for scikit-learn's own compiled tree types (core.store.formats.SKLEARN_TYPES)."""
    names = tuple(dict.fromkeys(part.strip() for part in (env.get(name) or "").split(",") if part.strip()))
    for type_name in names:
        if type_name != SKLEARN and not _TYPE_NAME.fullmatch(type_name):
            raise InvalidInput(
                f"{name}: {type_name!r} is not a fully qualified type name such as mypackage.MyModel, "
                f"nor {SKLEARN!r} (scikit-learn's own tree types)"
            )
    return expand_trusted(names)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).lower()
    if value not in choices:
        raise InvalidInput(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _optional_path(raw: str | None, default: Path) -> Path | None:
    """A directory, or None for ``off``."""
    if raw is None:
        return default
    return None if raw.strip().lower() in ("off", "0", "false", "no") else Path(raw)


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, minimum=0.0)
    if value > 1:
        raise InvalidInput(f"{name}={env.get(name)!r} must be between 0 and 1")
    return value


def _flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = (env.get(name) or ("1" if default else "0")).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"{name}={value!r}: expected 1 or 0")
