#!/usr/bin/env python3
"""The retraining job (what the Kubernetes CronJob runs): train, evaluate, publish,
and optionally deploy when a named metric beats the live version.

    python scripts/retrain.py iris --dataset iris --estimator random_forest --deploy-if-better accuracy

Prints one JSON object (model, version, metrics, deployed, reason); exit 1 on error.
The code is ``core.training.retrain``, the same the API's retrain jobs run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelswap.core.training.retrain import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
