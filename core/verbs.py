"""Every public method of ``Operations`` (core.operations), admin verb or read view,
declared once: the HTTP routes that take it, and whether ``modelswap.Client`` and the
CLI's backends (the ``Backend`` protocol, ``Local``, ``Remote``) offer it. A side that
deliberately lacks one says why instead.

tests/test_verbs.py holds each side to this table, both ways: a declared method a side
lacks fails it, and so does a method a side has that the table does not declare (an
admin route, a Client method, a backend method Operations lacks), so a new verb is
added to Operations first and then to every side, or declared absent there with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    """Where one Operations method is offered. ``routes``: "METHOD path" as the server's
    route table spells it; each ``no_*`` is the reason a side lacks it (None: it has it)."""

    routes: tuple[str, ...] = ()
    no_route: str | None = None
    no_client: str | None = None
    no_cli: str | None = None


GUARD_ONLY = (
    "the guard's own stop, taken by a serving process when its canary breaches the guard, and only if the "
    "canary is still that version; a person stops a canary with canary_stop"
)
UPLOADED = "over HTTP a model file arrives as an upload (upload), validated in a child process"
ALERTMANAGER_ONLY = (
    "Alertmanager's webhook, called with Alertmanager's own payload; a person retrains with retrain "
    "(or train on the store)"
)
TRAINED_AS_A_JOB = "a server never trains in a serving process: it starts a retraining job (retrain)"

VERBS: dict[str, Verb] = {
    # -- verbs -------------------------------------------------------------------------------
    "deploy": Verb(("POST /v1/models/{model}/deploy",)),
    "rollback": Verb(("POST /v1/models/{model}/rollback",)),
    "canary_start": Verb(("POST /v1/models/{model}/canary",)),
    "canary_stop": Verb(("DELETE /v1/models/{model}/canary",)),
    "canary_promote": Verb(("POST /v1/models/{model}/canary/promote",)),
    "canary_abort": Verb(no_route=GUARD_ONLY, no_client=GUARD_ONLY, no_cli=GUARD_ONLY),
    "shadow_start": Verb(("POST /v1/models/{model}/shadow",)),
    "shadow_stop": Verb(("DELETE /v1/models/{model}/shadow",)),
    "rollout_start": Verb(("POST /v1/models/{model}/rollout",)),
    "rollout_change": Verb(
        (
            "POST /v1/models/{model}/rollout/pause",
            "POST /v1/models/{model}/rollout/resume",
            "DELETE /v1/models/{model}/rollout",
        )
    ),
    "watch_reset": Verb(("POST /v1/models/{model}/watch/reset",)),
    "alias_set": Verb(("PUT /v1/models/{model}/aliases/{alias}",)),
    "alias_delete": Verb(("DELETE /v1/models/{model}/aliases/{alias}",)),
    "delete": Verb(("DELETE /v1/models/{model}/versions/{version}",)),
    "gc": Verb(("POST /v1/models/{model}/gc",)),
    "publish": Verb(no_route=UPLOADED, no_client=UPLOADED),
    "upload": Verb(
        ("POST /v1/models/{model}/versions",),
        no_cli="the CLI publishes a file it names (publish); through a server, Remote.publish uploads it",
    ),
    "retrain": Verb(
        ("POST /v1/models/{model}/retrain",),
        no_cli="modelswap train answers with the outcome (train); through a server, Remote.train starts "
        "a retraining job and waits for it",
    ),
    "train": Verb(no_route=TRAINED_AS_A_JOB, no_client=TRAINED_AS_A_JOB + "; wait_for_job waits for it"),
    "reload": Verb(
        ("POST /v1/models/{model}/reload",),
        no_cli="only a serving process reloads what it serves, and only the one that answers the request; "
        "the CLI changes the store, which every serving process watches by itself",
    ),
    "set_monitor_config": Verb(("PUT /v1/models/{model}/monitor/config",)),
    "policy_set": Verb(("PUT /v1/models/{model}/policy",)),
    "policy_clear": Verb(("DELETE /v1/models/{model}/policy",)),
    "alertmanager": Verb(
        ("POST /v1/alertmanager",),
        no_client=ALERTMANAGER_ONLY,
        no_cli=ALERTMANAGER_ONLY,
    ),
    # -- views -------------------------------------------------------------------------------
    "models": Verb(("GET /v1/models",)),
    "model": Verb(("GET /v1/models/{model}",)),
    "versions": Verb(("GET /v1/models/{model}/versions",)),
    "version": Verb(
        ("GET /v1/models/{model}/versions/{version}",),
        no_cli="the CLI shows a version among its model's (versions) or by its model id (show: model_id)",
    ),
    "model_id": Verb(("GET /v1/model-ids/{model_id}",)),
    "lineage": Verb(("GET /v1/models/{model}/versions/{version}/lineage",)),
    "compare": Verb(("GET /v1/models/{model}/compare",)),
    "aliases": Verb(("GET /v1/models/{model}/aliases",)),
    "history": Verb(("GET /v1/models/{model}/history",)),
    "fleet": Verb(("GET /v1/models/{model}/fleet",)),
    "canary": Verb(("GET /v1/models/{model}/canary",)),
    "monitor_config": Verb(("GET /v1/models/{model}/monitor/config",)),
    "policy": Verb(("GET /v1/models/{model}/policy",)),
    "job": Verb(
        ("GET /v1/jobs/{job}",),
        no_cli="the CLI has no job command: Remote.train follows the job it starts (Client.wait_for_job)",
    ),
}

# Public methods of Operations that are no verb or view: the table leaves them out.
INTERNAL: dict[str, str] = {
    "count": "counts an admin action taken outside a verb (a rollout step, a watch's rollback) in the metrics",
    "sync": "brings this process's serving up to date after a change; every verb does it",
}

# Client methods that are no Operations method, and who answers them instead.
CLIENT_ELSEWHERE: dict[str, str] = {
    "request": "the transport every other method goes through",
    "predict": "inference: the serving processes answer it (core.serving), not the operations layer",
    "feedback": "labels for answered requests: the serving process's monitor joins them to its prediction log",
    "monitor": "the monitoring view: the serving process's monitor merges the fleet's counts",
    "shadow": "the shadow's comparison, fleet-wide (core.delivery.driver.shadow_view)",
    "rollout": "the rollout's step and judgement (core.delivery.driver.rollout_view)",
    "watch": "the watched deploy's state (core.delivery.driver.watch_view)",
    "wait_for_job": "polls job until the job ends",
}
