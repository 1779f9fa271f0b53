"""Retraining jobs: state files on the store volume, so any worker or pod can answer for a job.

``<root>/.jobs/<id>.json`` holds the state (queued, running, succeeded, failed) and
``<id>.log`` the job's output. The API process creates the job and starts
``python -m core.training.retrain`` in a subprocess; the job process itself records its
progress and outcome, so a job outlives the worker that started it.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from modelswap.core.errors import Conflict, InvalidInput, JobNotFound
from modelswap.core.store.clock import iso, utcnow
from modelswap.core.store.fsio import atomic_write_json, read_regular
from modelswap.core.store.ids import VERSION_ID_RE, new_version_id, validate_model_name
from modelswap.core.store.layout import JOBS_DIR
from modelswap.core.store.locking import LockPolicy, hold
from modelswap.core.store.processes import alive
from modelswap.core.training.fit import DATASETS, ESTIMATORS

logger = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
ACTIVE = (QUEUED, RUNNING)
LOG_TAIL_LINES = 40
METRIC_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def validate_job_id(job: object) -> str:
    if not isinstance(job, str) or not VERSION_ID_RE.fullmatch(job):
        raise InvalidInput(f"invalid job id {job!r}: expected YYYYMMDD-HHMMSS-xxxxxx")
    return job


@dataclass(frozen=True)
class RetrainRequest:
    model: str
    dataset: str = "iris"
    target: str | None = None
    estimator: str = "logreg"
    deploy: bool = False
    deploy_if_better: str | None = None
    seed: int = 0

    @classmethod
    def from_dict(cls, model: str, body: Mapping[str, Any]) -> RetrainRequest:
        unknown = set(body) - {"dataset", "estimator", "deploy", "deploy_if_better", "seed"}
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
        dataset = body.get("dataset", "iris")
        if dataset not in DATASETS:
            # A csv path would name a file on the server: not something a request may pick.
            raise InvalidInput(f"dataset must be one of {', '.join(DATASETS)} (csv datasets: run scripts/retrain.py)")
        estimator = body.get("estimator", "logreg")
        if estimator not in ESTIMATORS:
            raise InvalidInput(f"estimator must be one of {', '.join(ESTIMATORS)}")
        deploy, better = body.get("deploy", False), body.get("deploy_if_better")
        if not isinstance(deploy, bool):
            raise InvalidInput("'deploy' must be true or false")
        if better is not None and (not isinstance(better, str) or not METRIC_RE.fullmatch(better)):
            raise InvalidInput("'deploy_if_better' must be a metric name such as \"accuracy\"")
        if deploy and better:
            raise InvalidInput("give 'deploy' or 'deploy_if_better', not both")
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise InvalidInput("'seed' must be a whole number from 0 to 4294967295")
        return cls(validate_model_name(model), dataset, None, estimator, deploy, better, seed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "estimator": self.estimator,
            "deploy": self.deploy,
            "deploy_if_better": self.deploy_if_better,
            "seed": self.seed,
        }

    def argv(self, root: Path, job_file: Path) -> list[str]:
        """The job's command line. No ``--actor``: what the job publishes and deploys is
        recorded as ``retrain:<host>``, as the CronJob's is; who started it is the job's
        ``actor``."""
        args = [sys.executable, "-m", "modelswap.core.training.retrain", self.model, "--root", str(root)]
        args += ["--job-file", str(job_file)]
        args += ["--dataset", self.dataset, "--estimator", self.estimator, "--seed", str(self.seed)]
        if self.deploy:
            args.append("--deploy")
        if self.deploy_if_better:
            args += ["--deploy-if-better", self.deploy_if_better]
        return args


class Jobs:
    """Retrain jobs of one store. One active retrain per model, across processes and pods."""

    def __init__(self, root: Path, *, lock: LockPolicy | None = None) -> None:
        self.root = Path(root)
        self.dir = self.root / JOBS_DIR
        self.lock = lock or LockPolicy()

    def path(self, job: str) -> Path:
        return self.dir / f"{validate_job_id(job)}.json"

    def start(self, params: RetrainRequest, actor: str, *, job_id: str | None = None) -> Job:
        """Create the job (queued) and start its process; Conflict if one runs for the model.
        ``job_id``: chosen by a caller that records it before the job starts (an alert's retrain)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with hold(self.dir / f"{params.model}.lock", self.lock):
            for other in self.of_model(params.model):
                if other["state"] in ACTIVE:
                    raise Conflict(f"retrain job {other['id']} of {params.model} is still {other['state']}")
            job_id = validate_job_id(job_id) if job_id is not None else new_version_id(utcnow())
            state = {
                "id": job_id,
                "model": params.model,
                "state": QUEUED,
                "params": params.to_dict(),
                "actor": actor,
                "created_at": iso(utcnow()),
                "host": socket.gethostname(),
                "pid": None,
                "progress": "queued",
                "result": None,
                "error": None,
                "updated": time.time(),
            }
            atomic_write_json(self.path(job_id), state)
            log = open(self.dir / f"{job_id}.log", "ab")
            try:
                proc = subprocess.Popen(
                    params.argv(self.root, self.path(job_id)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # the job outlives a worker restart
                )
            except OSError as exc:
                update_job(self.path(job_id), state=FAILED, error=f"could not start the job: {exc}")
                raise
            finally:
                log.close()
        threading.Thread(target=proc.wait, name=f"reap-{job_id}", daemon=True).start()
        logger.info("retrain job %s of %s started (pid %d)", job_id, params.model, proc.pid)
        return Job(job_id, params.model)

    def of_model(self, model: str | None = None) -> list[dict[str, Any]]:
        if not self.dir.is_dir():
            return []
        jobs = []
        for entry in sorted(self.dir.glob("*.json")):
            if ".tmp-" in entry.name:
                continue
            job = self._read(entry)
            if job is not None and (model is None or job.get("model") == model):
                jobs.append(self._settle(job))
        return jobs

    def get(self, job: str) -> dict[str, Any]:
        data = self._read(self.path(job))
        if data is None:
            raise JobNotFound(f"no retrain job {job}")
        data = self._settle(data)
        data["log_tail"] = self._tail(job)
        return data

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data = orjson.loads(read_regular(path))
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _settle(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job whose process is gone without a final state (killed, host rebooted) failed."""
        if job.get("state") in ACTIVE and job.get("host") == socket.gethostname():
            pid = job.get("pid")
            age = time.time() - float(job.get("updated", 0) or 0)
            if (pid and not alive(int(pid))) or (pid is None and age > 120):
                job = {**job, "state": FAILED, "error": "the job process ended without reporting (killed?)"}
        return job

    def _tail(self, job: str) -> list[str]:
        try:
            with open(self.dir / f"{job}.log", "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 16384))
                lines = handle.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return lines[-LOG_TAIL_LINES:]


@dataclass(frozen=True)
class Job:
    id: str
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "state": QUEUED}


def update_job(path: Path, **changes: Any) -> None:
    """Merge ``changes`` into a job file (the job process is its only writer once running)."""
    try:
        data = orjson.loads(read_regular(path))
    except (FileNotFoundError, orjson.JSONDecodeError):
        data = {}
    atomic_write_json(path, {**data, **changes, "updated": time.time()})
