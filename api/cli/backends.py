"""Where a ``modelswap`` command acts: the store directory (Local) or a server (Remote).

Both return the same plain data, so every command prints the same output and
exits the same way in either mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from modelswap.api.http.auth import configured_token
from modelswap.api.client import Client
from modelswap.core import registry as reg
from modelswap.core.canary import Guard, read_canary
from modelswap.core.canary_store import promote_canary, start_canary, stop_canary
from modelswap.core.clock import default_actor
from modelswap.core.errors import ModelswapError
from modelswap.core.fleet import read_fleet
from modelswap.core.settings import Settings
from modelswap.core.store import Store
from modelswap.core.training import retrain


class Backend(Protocol):
    def models(self) -> list[dict[str, Any]]: ...
    def versions(self, model: str) -> dict[str, Any]: ...
    def status(self, model: str) -> dict[str, Any]: ...
    def history(self, model: str) -> list[dict[str, Any]]: ...
    def deploy(self, model: str, version: str, reason: str) -> dict[str, Any]: ...
    def rollback(self, model: str, to: str | None, reason: str) -> dict[str, Any]: ...
    def gc(self, model: str, keep: int, dry_run: bool) -> dict[str, Any]: ...
    def publish(self, model: str, file: Path, **kwargs: Any) -> dict[str, Any]: ...
    def train(self, model: str, **kwargs: Any) -> dict[str, Any]: ...
    def canary_start(
        self, model: str, version: str, fraction: float, guard: Guard | None, reason: str
    ) -> dict[str, Any]: ...
    def canary_status(self, model: str) -> dict[str, Any]: ...
    def canary_stop(self, model: str, reason: str) -> dict[str, Any]: ...
    def canary_promote(self, model: str, reason: str) -> dict[str, Any]: ...


def backend_for(settings: Settings) -> Backend:
    if settings.url:
        return Remote(Client(settings.url, configured_token(settings)))
    return Local(settings)


class Local:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store.from_settings(settings)
        self.actor = default_actor()

    def models(self) -> list[dict[str, Any]]:
        return [self.store.status(m).to_dict() for m in self.store.models()]

    def versions(self, model: str) -> dict[str, Any]:
        status = self.store.status(model)
        records = [r.to_dict() for r in reversed(self.store.registry(model).versions())]
        return {**status.to_dict(), "versions": records}

    def status(self, model: str) -> dict[str, Any]:
        data: dict[str, Any] = self.store.status(model).to_dict()
        data["warnings"] = self.store.warnings(model, data["current"])
        fleet = read_fleet(self.store.paths(model), self.settings.poll_interval, data["current"])
        data["fleet"] = fleet.to_dict()
        return data

    def history(self, model: str) -> list[dict[str, Any]]:
        return [e.to_dict() for e in reversed(self.store.registry(model).history())]

    def deploy(self, model: str, version: str, reason: str) -> dict[str, Any]:
        return self.store.deploy(model, version, actor=self.actor, reason=reason).to_dict()

    def rollback(self, model: str, to: str | None, reason: str) -> dict[str, Any]:
        return self.store.rollback(model, to, actor=self.actor, reason=reason).to_dict()

    def gc(self, model: str, keep: int, dry_run: bool) -> dict[str, Any]:
        return self.store.gc(model, keep, dry_run=dry_run, actor=self.actor).to_dict()

    def publish(self, model: str, file: Path, **kwargs: Any) -> dict[str, Any]:
        record = self.store.publish(model, file, actor=self.actor, **kwargs)
        return {"model": model, **record.to_dict()}

    def train(self, model: str, **kwargs: Any) -> dict[str, Any]:
        return retrain(self.store, model, actor=self.actor, **kwargs).to_dict()

    def canary_start(
        self, model: str, version: str, fraction: float, guard: Guard | None, reason: str
    ) -> dict[str, Any]:
        return start_canary(
            self.store, model, version, fraction, guard=guard, actor=self.actor, reason=reason
        ).to_dict()

    def canary_status(self, model: str) -> dict[str, Any]:
        config = read_canary(self.store.existing(model).abtest)
        return {"model": model, "running": config is not None, "config": config.to_dict() if config else None}

    def canary_stop(self, model: str, reason: str) -> dict[str, Any]:
        config = stop_canary(self.store, model, actor=self.actor, reason=reason, action=reg.CANARY_STOP)
        return {"model": model, "stopped": config.version}

    def canary_promote(self, model: str, reason: str) -> dict[str, Any]:
        return promote_canary(self.store, model, actor=self.actor, reason=reason).to_dict()


class Remote:
    def __init__(self, client: Client) -> None:
        self.client = client

    def models(self) -> list[dict[str, Any]]:
        return self.client.models()

    def versions(self, model: str) -> dict[str, Any]:
        data = self.client.versions(model)
        data["previous"] = self.client.model(model).get("previous")
        return data

    def status(self, model: str) -> dict[str, Any]:
        data = self.client.model(model)
        server = data.pop("this_process", {})
        data["server"] = server
        if server.get("last_load_error"):
            data.setdefault("warnings", []).append(f"server load error: {server['last_load_error']['message']}")
        fleet = self.client.fleet(model)
        data["fleet"] = {k: fleet[k] for k in ("current", "processes", "summary", "converged")}
        return data

    def history(self, model: str) -> list[dict[str, Any]]:
        return self.client.history(model)

    def deploy(self, model: str, version: str, reason: str) -> dict[str, Any]:
        return self.client.deploy(model, version, reason)

    def rollback(self, model: str, to: str | None, reason: str) -> dict[str, Any]:
        return self.client.rollback(model, to, reason)

    def gc(self, model: str, keep: int, dry_run: bool) -> dict[str, Any]:
        return self.client.gc(model, keep, dry_run)

    def publish(self, model: str, file: Path, **kwargs: Any) -> dict[str, Any]:
        example = kwargs.pop("input_example", None)
        return self.client.upload(model, file, example=example, **kwargs)

    def train(self, model: str, **kwargs: Any) -> dict[str, Any]:
        if str(kwargs.get("dataset", "")).startswith("csv:"):
            raise ModelswapError("csv datasets train only on the store directly (without --url)")
        params = {k: v for k, v in kwargs.items() if k != "target" and v not in (None, False)}
        job = self.client.retrain(model, **params)
        state = self.client.wait_for_job(job["job"])
        if state["state"] != "succeeded":
            raise ModelswapError(f"retrain job {job['job']} {state['state']}: {state.get('error') or 'see its log'}")
        return dict(state["result"])

    def canary_start(
        self, model: str, version: str, fraction: float, guard: Guard | None, reason: str
    ) -> dict[str, Any]:
        return self.client.canary_start(model, version, fraction, guard.to_dict() if guard else None, reason)

    def canary_status(self, model: str) -> dict[str, Any]:
        return self.client.canary_status(model)

    def canary_stop(self, model: str, reason: str) -> dict[str, Any]:
        return self.client.canary_stop(model, reason)

    def canary_promote(self, model: str, reason: str) -> dict[str, Any]:
        return self.client.canary_promote(model, reason)
