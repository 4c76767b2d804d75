"""The marketing dashboard: one page drawing the analytics API with plotly.js, served without a token.

The page holds no data: the browser reads the API itself with the API token the user gives it (in the
address's fragment `#token=...`, or a form), so these routes are open, like `/docs`. Everything the page
loads comes from here - its own files in `dashboard/` and the plotly.js bundle of the `plotly` package
(no CDN). Static files are served from a fixed list (no path from the request reaches the file system)
under a content-hashed URL, so they may be cached for a year; plotly.js is gzipped once when asked.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

HERE = Path(__file__).parent / "dashboard"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8"}
PLOTLY = "plotly.min.js"

# Scripts and styles from this origin only, API calls to it only: an id that slipped into markup could
# still not run. plotly.js adds its own <style> elements and inline styles, hence 'unsafe-inline' there.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"


def _plotly_path() -> Path:
    spec = find_spec("plotly")  # its location, without importing the Python package
    if spec is None or spec.origin is None:
        raise RuntimeError("the plotly package is not installed")
    return Path(spec.origin).parent / "package_data" / PLOTLY


@cache
def _files() -> dict[str, Path]:
    """Every file the page may load, by name: the dashboard's own (no subfolders) and plotly.js."""
    own = {path.name: path for path in HERE.iterdir() if path.is_file() and path.suffix in MEDIA_TYPES}
    return {**own, PLOTLY: _plotly_path()}


@cache
def _content(name: str) -> tuple[bytes, bytes]:
    """A file's bytes and their gzip (computed once per process)."""
    body = _files()[name].read_bytes()
    return body, gzip.compress(body, compresslevel=6, mtime=0)


@cache
def _revision() -> str:
    """Changes with any file the page loads: the `?v=` of their URLs in the page."""
    digest = hashlib.sha256(version("plotly").encode())
    for name in sorted(_files()):
        if name != PLOTLY:
            digest.update(name.encode() + b"\0" + _files()[name].read_bytes())
    return digest.hexdigest()[:12]


@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    """The page (no data in it); its link to the campaigns page when `campaigns_page_url` is set."""
    campaigns = getattr(request.app.state.settings, "campaigns_page_url", None) or ""
    page = (_content("index.html")[0].replace(b"__REVISION__", _revision().encode())
            .replace(b"__CAMPAIGNS_URL__", html.escape(campaigns, quote=True).encode()))
    return Response(page, media_type=MEDIA_TYPES[".html"], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name}")
def static_file(name: str, request: Request) -> Response:
    """The page's script and styles, and plotly.js; nothing else (the page itself is at /dashboard). Sync:
    the first answer reads and gzips plotly.js in a worker thread."""
    path = _files().get(name)
    if path is None or name == "index.html":
        raise HTTPException(404, "no such dashboard file")
    body, zipped = _content(name)
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
    if "gzip" in request.headers.get("accept-encoding", "") and len(zipped) < len(body):
        body, headers["Content-Encoding"] = zipped, "gzip"
    return Response(body, media_type=MEDIA_TYPES[path.suffix], headers=headers)
