"""modelswap core: the filesystem-versioned model store and the serving machinery.

Nothing in this package imports starlette, uvicorn or ``api``; the HTTP layer
depends on core, never the reverse.
"""
