"""The self-service portal: the static pages under /ui/, served with strict security headers.

The pages hold no data: every value they show comes from the API, called by the page's own
script with the bearer token the user typed (kept in sessionStorage). So /ui/ needs no token.
The portal is a falcon sink rather than a route: it is not part of the API (the index and the
OpenAPI document list API routes only), and falcon runs no ``process_resource`` middleware,
BearerAuth included, for a sink.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import falcon

UI_DIR = Path(__file__).resolve().parent / "ui"
PREFIX = "/ui"
# The label of every portal request in the metrics (a closed set: never the file name asked).
URI_TEMPLATE = "/ui/{file}"
# A file name the portal may serve: flat, lower-case, with a known type. Anything else is 404,
# so no path can climb out of UI_DIR.
_FILE_RE = re.compile(r"[a-z0-9][a-z0-9-]*\.(html|js|css|svg)")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
# No inline script or style, nothing from another origin, no framing, forms post nowhere.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


class Portal:
    """GET /ui/ (the programs page), /ui/<file>; /ui redirects to /ui/."""

    def __init__(self, directory: Path = UI_DIR) -> None:
        self._directory = directory

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        """Serve one static file of the portal, or raise 404/405."""
        file: str | None = params.get("file")
        req.uri_template = URI_TEMPLATE
        resp.set_headers(SECURITY_HEADERS)
        if req.method != "GET":
            raise falcon.HTTPMethodNotAllowed(["GET"])
        if file is None:
            raise falcon.HTTPMovedPermanently(PREFIX + "/")
        name = file or "index.html"
        match = _FILE_RE.fullmatch(name)
        path = self._directory / name
        if match is None or not path.is_file():
            raise falcon.HTTPNotFound(description=f"the portal has no file {name!r}")
        resp.content_type = CONTENT_TYPES[match.group(1)]
        resp.data = path.read_bytes()


def add_portal(app: falcon.App) -> None:
    """Serve the portal under /ui/ on ``app``."""
    app.add_sink(Portal(), prefix=re.compile(r"/ui(?:/(?P<file>[^/]*))?\Z"))
