"""The HTTP side: the Starlette app, its routes, and the v2 and MLflow protocols."""
