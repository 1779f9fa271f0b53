"""modelswap's edges: the Starlette HTTP API and the ``modelswap`` command line."""
