"""What one serving process holds (built by ``create_app``), and reaching it from a request."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.registry import Collector
from starlette.requests import Request

from modelswap.core.access.keyring import Keyring
from modelswap.core.access.limiter import FailureLimiter
from modelswap.core.delivery.shadow_runner import ShadowRunner
from modelswap.core.metrics import Metrics
from modelswap.core.monitoring.monitor import Monitor
from modelswap.core.operations import Operations
from modelswap.core.serving.inference import Inference
from modelswap.core.serving.pool import BatchPool
from modelswap.core.serving.runtime import Runtime
from modelswap.core.serving.slots import Serving
from modelswap.core.settings import Settings
from modelswap.core.store.ids import validate_model_name
from modelswap.core.store.store import Store


@dataclass
class AppState:
    settings: Settings
    keyring: Keyring
    limiter: FailureLimiter
    ops: Operations
    runtime: Runtime
    monitor: Monitor
    collector: Collector | None
    batching: BatchPool
    shadows: ShadowRunner
    inference: Inference
    admin_off: str | None = None  # why the admin API is off (core.access.admin_token.admin_off), else None

    @property
    def store(self) -> Store:
        return self.ops.store

    @property
    def serving(self) -> Serving:
        return self.runtime.serving

    @property
    def metrics(self) -> Metrics:
        assert self.ops.metrics is not None  # create_app always passes one
        return self.ops.metrics


def app_state(request: Request) -> AppState:
    """The one way a route reaches the process state."""
    state: AppState = request.app.state.modelswap
    return state


def model_of(request: Request) -> str:
    """The ``{model}`` path parameter, validated."""
    return validate_model_name(request.path_params["model"])


def actor_of(request: Request) -> str:
    """Who acts, for history: ``token:<name>`` of the token the route asked for
    (auth.needs), else ``api:<client address>``."""
    identity = request.scope.get("modelswap.identity")
    if identity is not None:
        return str(identity.actor)
    client = request.client.host if request.client else "unknown"
    return f"api:{client}"
