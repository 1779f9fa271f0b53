"""The ceiling for scripts/bench.py: the thinnest Starlette app around model.predict
(no store, no hot swap, no checks: the upper bound for one uvicorn worker on this stack).
The model comes from $BENCH_MODEL. Rows go to the model as a float64 array; records
(a list of objects) as a pandas DataFrame, for models fitted on one."""

import os

import joblib
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MODEL = joblib.load(os.environ["BENCH_MODEL"])


async def predict(request: Request) -> JSONResponse:
    try:
        instances = (await request.json())["instances"]
        if isinstance(instances[0], dict):
            import pandas as pd

            X = pd.DataFrame(instances)
        else:
            X = np.asarray(instances, dtype=np.float64)
    except Exception as exc:  # malformed body
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"predictions": MODEL.predict(X).tolist()})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
