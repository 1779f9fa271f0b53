"""A small client for a running modelswap server; the CLI's ``--url`` mode uses it,
and notebooks can too::

    from modelswap.api.client import Client
    c = Client("http://127.0.0.1:8000", token="...")
    c.predict("iris", [[6.0, 2.9, 4.5, 1.5]])
    c.rollback("iris")

Standard library only. Errors the server reports raise RemoteError with its code.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from modelswap.core.errors import ModelswapError, NoReferenceWarning, no_reference


class RemoteError(ModelswapError):
    """The server answered with an error body; ``code`` and ``status`` are the server's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Client:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- transport ----------------------------------------------------------------
    def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, content_type: str | None = None
    ) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", content_type or "application/json")
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                error = json.loads(payload)["error"]
                raise RemoteError(exc.code, error["code"], error["message"]) from None
            except (ValueError, KeyError, TypeError):
                raise RemoteError(exc.code, "http_error", f"HTTP {exc.code} from {self.url}{path}") from None
        except urllib.error.URLError as exc:
            raise RemoteError(0, "unreachable", f"cannot reach {self.url}: {exc.reason}") from None

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def _m(self, model: str) -> str:
        return f"/v1/models/{self._q(model)}"

    # -- inference -------------------------------------------------------------------
    def predict(self, model: str, instances: list[list[float]], method: str = "predict") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"{self._m(model)}/predict", {"instances": instances, "method": method}
        )
        return result

    # -- reads -------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/models")["models"])

    def model(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", self._m(model)))

    def versions(
        self, model: str, *, where: list[str] | None = None, tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Versions newest first; ``where=["accuracy>0.9"]`` and ``tags={"team": "ml"}`` filter."""
        query = [("where", w) for w in where or []] + [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return dict(self.request("GET", f"{self._m(model)}/versions{suffix}"))

    def model_id(self, model_id: str) -> dict[str, Any]:
        """The version a content id (``m-...``) names."""
        return dict(self.request("GET", f"/v1/model-ids/{self._q(model_id)}"))

    def lineage(self, model: str, version: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/versions/{self._q(version)}/lineage"))

    def compare(self, model: str, a: str, b: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"a": a, "b": b})
        return dict(self.request("GET", f"{self._m(model)}/compare?{query}"))

    def aliases(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/aliases"))

    def alias_set(self, model: str, alias: str, version: str) -> dict[str, Any]:
        return dict(self.request("PUT", f"{self._m(model)}/aliases/{self._q(alias)}", {"version": version}))

    def alias_delete(self, model: str, alias: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"{self._m(model)}/aliases/{self._q(alias)}"))

    def version(self, model: str, version: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/versions/{self._q(version)}"))

    def history(self, model: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Deploy history, newest first (``limit``: the newest N entries)."""
        query = f"?limit={int(limit)}" if limit is not None else ""
        return list(self.request("GET", f"{self._m(model)}/history{query}")["history"])

    def fleet(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/fleet"))

    def monitor(self, model: str, *, version: str | None = None) -> dict[str, Any]:
        """Drift, live quality, traffic and alerts per version and variant (the fleet's)."""
        query = "?" + urllib.parse.urlencode({"version": version}) if version is not None else ""
        return dict(self.request("GET", f"{self._m(model)}/monitor{query}"))

    def monitor_config(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/monitor/config"))

    def set_monitor_config(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some of the model's monitoring thresholds (admin); the others are kept."""
        return dict(self.request("PUT", f"{self._m(model)}/monitor/config", changes))

    def feedback(self, model: str, labels: dict[str, Any]) -> dict[str, Any]:
        """Ground truth for answered requests: ``{request_id: label}`` (a label per row, as a
        list, for a request of several rows)."""
        body = {"feedback": [{"request_id": rid, "label": label} for rid, label in labels.items()]}
        return dict(self.request("POST", f"{self._m(model)}/feedback", body))

    def job(self, job: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/jobs/{self._q(job)}"))

    # -- admin ---------------------------------------------------------------------------
    def deploy(
        self, model: str, version: str, reason: str = "", *, force: bool = False, watch: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Make ``version`` (an id or alias) live; ``force`` allows a breaking input-schema change.
        ``watch``: ``{"watch": seconds, "max_error_rate": 0.02, ...}``: roll back by itself on a breach."""
        body = {"version": version, "reason": reason, "force": force, **(watch or {})}
        return dict(self.request("POST", f"{self._m(model)}/deploy", body))

    # -- progressive delivery ------------------------------------------------------------
    def shadow(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/shadow"))

    def shadow_start(
        self, model: str, version: str, fraction: float = 1.0, reason: str = "", *, force: bool = False
    ) -> dict[str, Any]:
        """Shadow ``version`` on ``fraction`` of the live version's requests (admin)."""
        body = {"version": version, "fraction": fraction, "reason": reason, "force": force}
        return dict(self.request("POST", f"{self._m(model)}/shadow", body))

    def shadow_stop(self, model: str, reason: str = "") -> dict[str, Any]:
        return dict(self.request("DELETE", f"{self._m(model)}/shadow", {"reason": reason}))

    def rollout(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/rollout"))

    def rollout_start(
        self, model: str, plan: dict[str, Any], reason: str = "", *, force: bool = False
    ) -> dict[str, Any]:
        """Start a stepped rollout: ``plan`` has version, steps, step_seconds, min_requests,
        max_hold_seconds, gates (admin)."""
        return dict(self.request("POST", f"{self._m(model)}/rollout", {**plan, "reason": reason, "force": force}))

    def rollout_change(self, model: str, action: str, reason: str = "") -> dict[str, Any]:
        """``action``: pause, resume or abort."""
        if action == "abort":
            return dict(self.request("DELETE", f"{self._m(model)}/rollout", {"reason": reason}))
        return dict(self.request("POST", f"{self._m(model)}/rollout/{self._q(action)}", {"reason": reason}))

    def watch(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/watch"))

    def watch_reset(self, model: str, reason: str = "") -> dict[str, Any]:
        return dict(self.request("POST", f"{self._m(model)}/watch/reset", {"reason": reason}))

    def policy(self, model: str) -> dict[str, Any]:
        """The model's delivery policy and where its newest candidate stands."""
        return dict(self.request("GET", f"{self._m(model)}/policy"))

    def policy_set(self, model: str, policy: dict[str, Any], reason: str = "") -> dict[str, Any]:
        """Set the delivery policy: gate, shadow, rollout, on_alert (admin)."""
        return dict(self.request("PUT", f"{self._m(model)}/policy", {**policy, "reason": reason}))

    def policy_clear(self, model: str, reason: str = "") -> dict[str, Any]:
        return dict(self.request("DELETE", f"{self._m(model)}/policy", {"reason": reason}))

    def rollback(self, model: str, to: str | None = None, reason: str = "", *, force: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason} if reason else {}
        if to:
            body["to"] = to
        if force:
            body["force"] = True
        return dict(self.request("POST", f"{self._m(model)}/rollback", body))

    def gc(self, model: str, keep: int, dry_run: bool = False) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._m(model)}/gc", {"keep": keep, "dry_run": dry_run}))

    def canary_start(
        self,
        model: str,
        version: str,
        fraction: float,
        guard: dict[str, Any] | None = None,
        reason: str = "",
        *,
        force: bool = False,
    ) -> dict[str, Any]:
        body = {"version": version, "fraction": fraction, "guard": guard, "reason": reason, "force": force}
        return dict(self.request("POST", f"{self._m(model)}/canary", body))

    def canary(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._m(model)}/canary"))

    def canary_stop(self, model: str, reason: str = "") -> dict[str, Any]:
        return dict(self.request("DELETE", f"{self._m(model)}/canary", {"reason": reason}))

    def canary_promote(self, model: str, reason: str = "", *, force: bool = False) -> dict[str, Any]:
        body = {"reason": reason, "force": force}
        return dict(self.request("POST", f"{self._m(model)}/canary/promote", body))

    def upload(
        self,
        model: str,
        file: Path,
        *,
        metrics: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        example: list[Any] | None = None,
        signature: Any = None,
        metadata: dict[str, Any] | None = None,
        force: bool = False,
        reference: list[Any] | None = None,
        warn_no_reference: bool = True,
    ) -> dict[str, Any]:
        """Publish a model file as a new version (multipart upload): a skops file, or a joblib
        file if the server allows pickles (MODELSWAP_ALLOW_PICKLE_UPLOADS). ``example``: records
        or rows; ``signature``: a Signature or its JSON form; ``force``: allow inputs that
        break clients of the live version; ``reference``: the training rows (records or rows)
        whose profile the version keeps (reference.json); without them a NoReferenceWarning
        says drift monitoring is off for the version."""
        boundary = "modelswap-" + secrets.token_hex(12)
        parts: list[bytes] = []

        def field(name: str, value: bytes, filename: str | None = None) -> None:
            disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            kind = (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
            head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            head += f"Content-Type: {kind}\r\n\r\n" if filename else "\r\n"
            parts.append(head.encode() + value + b"\r\n")

        suffix = Path(file).suffix.lower()  # .skops or .joblib tells the server the format
        field("model", Path(file).read_bytes(), "model" + (suffix if suffix[1:].isalnum() else ""))
        if signature is not None and hasattr(signature, "to_dict"):
            signature = signature.to_dict()
        fields = {"metrics": metrics, "tags": tags, "example": example, "signature": signature, "metadata": metadata}
        for name, value in fields.items():
            if value is not None:
                field(name, json.dumps(value).encode())
        if reference is not None:  # a file part: plain form fields are limited to 1 MiB
            field("reference", json.dumps(reference).encode(), "reference.json")
        if force:
            field("force", b"true")
        if description:
            field("description", description.encode())
        raw = b"".join(parts) + f"--{boundary}--\r\n".encode()
        record = dict(
            self.request(
                "POST", f"{self._m(model)}/versions", raw=raw, content_type=f"multipart/form-data; boundary={boundary}"
            )
        )
        if reference is None and warn_no_reference:
            warnings.warn(NoReferenceWarning(f"{model} {record['id']}: {no_reference('reference=')}"), stacklevel=2)
        return record

    def delete(self, model: str, version: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"{self._m(model)}/versions/{self._q(version)}"))

    def reload(self, model: str) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._m(model)}/reload"))

    def retrain(self, model: str, **params: Any) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._m(model)}/retrain", params))

    def wait_for_job(self, job: str, *, timeout: float = 600, interval: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.job(job)
            if state["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
                return state
            time.sleep(interval)
