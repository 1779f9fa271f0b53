"""The on-call console: ``GET /`` serves one static page that reads and acts through the
JSON API (files in ``console/``, shipped in the package; no build step, no CDN).

The page is rendered in the browser from the API, not on the server: the admin token
lives only in the tab's sessionStorage and travels as a bearer header, so the server
never sees it on a page load and never renders it. With ``MODELSWAP_PROTECT_READS`` the
API's reads answer 401 until the page has the token, and the page asks for it.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from modelswap.core.errors import NotFound

FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "policy.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# The page may load only its own script and style and talk only to this server.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_DIR = files("modelswap.api.http") / "console"
_CACHE: dict[str, bytes] = {}


def _read(name: str) -> bytes:
    data = _CACHE.get(name)
    if data is None:
        data = _CACHE[name] = (_DIR / name).read_bytes()
    return data


async def page(request: Request) -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    kind = FILES.get(name)
    if kind is None:
        raise NotFound(f"no console file {name!r}")
    return Response(_read(name), media_type=kind, headers=HEADERS)
