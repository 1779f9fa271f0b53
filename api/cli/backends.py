"""Where a ``modelswap`` command acts: the store directory (Local) or a server (Remote).

Local calls the operations layer, Remote the same views over HTTP; both return the
same plain data, so every command prints the same output and exits the same way in
either mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from modelswap.api.client import Client
from modelswap.core.access.admin_token import client_token
from modelswap.core.delivery.abtest import Guard
from modelswap.core.delivery.driver import rollout_view, shadow_view, watch_view
from modelswap.core.delivery.watched_deploy import WatchPlan
from modelswap.core.errors import InvalidInput, ModelswapError
from modelswap.core.operations import Operations
from modelswap.core.settings import Settings
from modelswap.core.store import history as hist
from modelswap.core.store.clock import default_actor
from modelswap.core.store.store import Store

ROLLOUT_ACTIONS = {"pause": hist.ROLLOUT_PAUSE, "resume": hist.ROLLOUT_RESUME, "abort": hist.ROLLOUT_ABORT}


class Backend(Protocol):
    def models(self) -> list[dict[str, Any]]: ...
    def model(self, model: str) -> dict[str, Any]: ...
    def versions(
        self, model: str, where: list[str] | None = None, tags: dict[str, str] | None = None
    ) -> dict[str, Any]: ...
    def history(self, model: str, limit: int | None = None) -> list[dict[str, Any]]: ...
    def fleet(self, model: str) -> dict[str, Any]: ...
    def deploy(
        self, model: str, version: str, reason: str = "", force: bool = False, watch: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...
    def rollback(self, model: str, to: str | None = None, reason: str = "", force: bool = False) -> dict[str, Any]: ...
    def gc(self, model: str, keep: int, dry_run: bool = False) -> dict[str, Any]: ...
    def publish(self, model: str, file: Path, **options: Any) -> dict[str, Any]: ...
    def train(self, model: str, **options: Any) -> dict[str, Any]: ...
    def canary(self, model: str) -> dict[str, Any]: ...
    def canary_start(
        self,
        model: str,
        version: str,
        fraction: float,
        guard: Guard | None = None,
        reason: str = "",
        force: bool = False,
    ) -> dict[str, Any]: ...
    def canary_stop(self, model: str, reason: str = "") -> dict[str, Any]: ...
    def canary_promote(self, model: str, reason: str = "", force: bool = False) -> dict[str, Any]: ...
    def model_id(self, model_id: str) -> dict[str, Any]: ...
    def lineage(self, model: str, version: str) -> dict[str, Any]: ...
    def compare(self, model: str, a: str, b: str) -> dict[str, Any]: ...
    def aliases(self, model: str) -> dict[str, Any]: ...
    def alias_set(self, model: str, alias: str, version: str) -> dict[str, Any]: ...
    def alias_delete(self, model: str, alias: str) -> dict[str, Any]: ...
    def delete(self, model: str, version: str) -> dict[str, Any]: ...
    def shadow_start(
        self, model: str, version: str, fraction: float = 1.0, reason: str = "", force: bool = False
    ) -> dict[str, Any]: ...
    def shadow_stop(self, model: str, reason: str = "") -> dict[str, Any]: ...
    def rollout_start(
        self, model: str, plan: dict[str, Any], reason: str = "", force: bool = False
    ) -> dict[str, Any]: ...
    def rollout_change(self, model: str, action: str, reason: str = "") -> dict[str, Any]: ...
    def watch_reset(self, model: str, reason: str = "") -> dict[str, Any]: ...
    def monitor_config(self, model: str) -> dict[str, Any]: ...
    def set_monitor_config(self, model: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    def policy(self, model: str) -> dict[str, Any]: ...
    def policy_set(self, model: str, policy: dict[str, Any], reason: str = "") -> dict[str, Any]: ...
    def policy_clear(self, model: str, reason: str = "") -> dict[str, Any]: ...


def backend_for(settings: Settings) -> Backend:
    if settings.url:
        return Remote(Client(settings.url, client_token(settings)))
    return Local(settings)


class Local:
    """The operations layer on the store directory, acting as ``cli:<user>``."""

    def __init__(self, settings: Settings) -> None:
        self.ops = Operations(Store.from_settings(settings), poll_interval=settings.poll_interval)
        self.actor = default_actor()
        self.stale = settings.monitor_retention  # shadow counts older than this are a gone process's

    def models(self) -> list[dict[str, Any]]:
        return self.ops.models()

    def model(self, model: str) -> dict[str, Any]:
        return self.ops.model(model)

    def versions(
        self, model: str, where: list[str] | None = None, tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return self.ops.versions(model, where=where, tags=tags)

    def history(self, model: str, limit: int | None = None) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.ops.history(model, limit=limit)["history"]
        return entries

    def fleet(self, model: str) -> dict[str, Any]:
        return self.ops.fleet(model)

    def deploy(
        self, model: str, version: str, reason: str = "", force: bool = False, watch: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        plan = WatchPlan.from_fields(watch or {})
        done = self.ops.deploy(model, version, actor=self.actor, reason=reason, force=force, watch=plan).to_dict()
        return {**done, **({"watch": plan.to_dict()} if plan else {})}

    def rollback(self, model: str, to: str | None = None, reason: str = "", force: bool = False) -> dict[str, Any]:
        return self.ops.rollback(model, to, actor=self.actor, reason=reason, force=force).to_dict()

    def gc(self, model: str, keep: int, dry_run: bool = False) -> dict[str, Any]:
        return self.ops.gc(model, keep, dry_run=dry_run, actor=self.actor).to_dict()

    def publish(self, model: str, file: Path, **options: Any) -> dict[str, Any]:
        return {"model": model, **self.ops.publish(model, file, actor=self.actor, **options).to_dict()}

    def train(self, model: str, **options: Any) -> dict[str, Any]:
        return self.ops.train(model, actor=self.actor, **options).to_dict()

    def canary(self, model: str) -> dict[str, Any]:
        return self.ops.canary(model)

    def canary_start(
        self,
        model: str,
        version: str,
        fraction: float,
        guard: Guard | None = None,
        reason: str = "",
        force: bool = False,
    ) -> dict[str, Any]:
        config = self.ops.canary_start(
            model, version, fraction, guard=guard, actor=self.actor, reason=reason, force=force
        )
        return config.to_dict()

    def canary_stop(self, model: str, reason: str = "") -> dict[str, Any]:
        config = self.ops.canary_stop(model, actor=self.actor, reason=reason)
        return {"model": model, "stopped": config.version}

    def canary_promote(self, model: str, reason: str = "", force: bool = False) -> dict[str, Any]:
        return self.ops.canary_promote(model, actor=self.actor, reason=reason, force=force).to_dict()

    def model_id(self, model_id: str) -> dict[str, Any]:
        return self.ops.model_id(model_id)

    def lineage(self, model: str, version: str) -> dict[str, Any]:
        return self.ops.lineage(model, version)

    def compare(self, model: str, a: str, b: str) -> dict[str, Any]:
        return self.ops.compare(model, a, b)

    def aliases(self, model: str) -> dict[str, Any]:
        return self.ops.aliases(model)

    def alias_set(self, model: str, alias: str, version: str) -> dict[str, Any]:
        return self.ops.alias_set(model, alias, version, actor=self.actor)

    def alias_delete(self, model: str, alias: str) -> dict[str, Any]:
        return self.ops.alias_delete(model, alias, actor=self.actor)

    def delete(self, model: str, version: str) -> dict[str, Any]:
        return self.ops.delete(model, version, actor=self.actor)

    # -- progressive delivery: each verb answers with its view, as the server does ---------
    def shadow_start(
        self, model: str, version: str, fraction: float = 1.0, reason: str = "", force: bool = False
    ) -> dict[str, Any]:
        self.ops.shadow_start(model, version, fraction, actor=self.actor, reason=reason, force=force)
        return shadow_view(self.ops.store, model, stale=self.stale)

    def shadow_stop(self, model: str, reason: str = "") -> dict[str, Any]:
        view = shadow_view(self.ops.store, model, stale=self.stale)  # the comparison as it stood
        config = self.ops.shadow_stop(model, actor=self.actor, reason=reason)
        return {**view, "running": False, "stopped": config.version}

    def rollout_start(self, model: str, plan: dict[str, Any], reason: str = "", force: bool = False) -> dict[str, Any]:
        self.ops.rollout_start(model, plan, actor=self.actor, reason=reason, force=force)
        return rollout_view(self.ops.store, model)

    def rollout_change(self, model: str, action: str, reason: str = "") -> dict[str, Any]:
        if action not in ROLLOUT_ACTIONS:
            raise InvalidInput(f"a rollout takes pause, resume or abort, not {action!r}")
        self.ops.rollout_change(model, ROLLOUT_ACTIONS[action], actor=self.actor, reason=reason)
        return rollout_view(self.ops.store, model)

    def watch_reset(self, model: str, reason: str = "") -> dict[str, Any]:
        self.ops.watch_reset(model, actor=self.actor, reason=reason)
        return watch_view(self.ops.store, model)

    def monitor_config(self, model: str) -> dict[str, Any]:
        return self.ops.monitor_config(model)

    def set_monitor_config(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.ops.set_monitor_config(model, changes)

    def policy(self, model: str) -> dict[str, Any]:
        return self.ops.policy(model)

    def policy_set(self, model: str, policy: dict[str, Any], reason: str = "") -> dict[str, Any]:
        return self.ops.policy_set(model, policy, actor=self.actor, reason=reason)

    def policy_clear(self, model: str, reason: str = "") -> dict[str, Any]:
        return self.ops.policy_clear(model, actor=self.actor, reason=reason)


class Remote:
    """The same verbs through a server's HTTP API (the server acts as ``api:<address>``)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def models(self) -> list[dict[str, Any]]:
        return self.client.models()

    def model(self, model: str) -> dict[str, Any]:
        return self.client.model(model)

    def versions(
        self, model: str, where: list[str] | None = None, tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return self.client.versions(model, where=where, tags=tags)

    def history(self, model: str, limit: int | None = None) -> list[dict[str, Any]]:
        return self.client.history(model, limit=limit)

    def fleet(self, model: str) -> dict[str, Any]:
        return self.client.fleet(model)

    def deploy(
        self, model: str, version: str, reason: str = "", force: bool = False, watch: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.client.deploy(model, version, reason, force=force, watch=watch)

    def rollback(self, model: str, to: str | None = None, reason: str = "", force: bool = False) -> dict[str, Any]:
        return self.client.rollback(model, to, reason, force=force)

    def gc(self, model: str, keep: int, dry_run: bool = False) -> dict[str, Any]:
        return self.client.gc(model, keep, dry_run)

    def publish(self, model: str, file: Path, **options: Any) -> dict[str, Any]:
        return self.client.upload(model, file, warn_no_reference=False, **options)

    def train(self, model: str, **options: Any) -> dict[str, Any]:
        if str(options.get("dataset", "")).startswith("csv:"):
            raise InvalidInput("csv datasets train only on the store directly (without --url)")
        params = {k: v for k, v in options.items() if k != "target" and v not in (None, False)}
        job = self.client.retrain(model, **params)
        state = self.client.wait_for_job(job["job"])
        if state["state"] != "succeeded":
            raise ModelswapError(f"retrain job {job['job']} {state['state']}: {state.get('error') or 'see its log'}")
        return dict(state["result"])

    def canary(self, model: str) -> dict[str, Any]:
        return self.client.canary(model)

    def canary_start(
        self,
        model: str,
        version: str,
        fraction: float,
        guard: Guard | None = None,
        reason: str = "",
        force: bool = False,
    ) -> dict[str, Any]:
        return self.client.canary_start(
            model, version, fraction, guard.to_dict() if guard else None, reason, force=force
        )

    def canary_stop(self, model: str, reason: str = "") -> dict[str, Any]:
        return self.client.canary_stop(model, reason)

    def canary_promote(self, model: str, reason: str = "", force: bool = False) -> dict[str, Any]:
        return self.client.canary_promote(model, reason, force=force)

    def model_id(self, model_id: str) -> dict[str, Any]:
        return self.client.model_id(model_id)

    def lineage(self, model: str, version: str) -> dict[str, Any]:
        return self.client.lineage(model, version)

    def compare(self, model: str, a: str, b: str) -> dict[str, Any]:
        return self.client.compare(model, a, b)

    def aliases(self, model: str) -> dict[str, Any]:
        return self.client.aliases(model)

    def alias_set(self, model: str, alias: str, version: str) -> dict[str, Any]:
        return self.client.alias_set(model, alias, version)

    def alias_delete(self, model: str, alias: str) -> dict[str, Any]:
        return self.client.alias_delete(model, alias)

    def delete(self, model: str, version: str) -> dict[str, Any]:
        return self.client.delete(model, version)

    def shadow_start(
        self, model: str, version: str, fraction: float = 1.0, reason: str = "", force: bool = False
    ) -> dict[str, Any]:
        return self.client.shadow_start(model, version, fraction, reason, force=force)

    def shadow_stop(self, model: str, reason: str = "") -> dict[str, Any]:
        return self.client.shadow_stop(model, reason)

    def rollout_start(self, model: str, plan: dict[str, Any], reason: str = "", force: bool = False) -> dict[str, Any]:
        return self.client.rollout_start(model, plan, reason, force=force)

    def rollout_change(self, model: str, action: str, reason: str = "") -> dict[str, Any]:
        return self.client.rollout_change(model, action, reason)

    def watch_reset(self, model: str, reason: str = "") -> dict[str, Any]:
        return self.client.watch_reset(model, reason)

    def monitor_config(self, model: str) -> dict[str, Any]:
        return self.client.monitor_config(model)

    def set_monitor_config(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.client.set_monitor_config(model, changes)

    def policy(self, model: str) -> dict[str, Any]:
        return self.client.policy(model)

    def policy_set(self, model: str, policy: dict[str, Any], reason: str = "") -> dict[str, Any]:
        return self.client.policy_set(model, policy, reason)

    def policy_clear(self, model: str, reason: str = "") -> dict[str, Any]:
        return self.client.policy_clear(model, reason)
