"""A page that draws a service's API in the browser (`/finance`, `/campaigns`), served without a token.

The page holds no data: the browser reads the API of the origin that serves it, with the token the user gives
it (in the address's fragment `#token=...`, or a form), so these routes are open, like `/docs`. Only the files
of the page's own folder are served, from a list made once (no path from a request reaches the file system);
scripts, styles and API calls from this origin only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def page_router(path: str, folder: Path) -> APIRouter:
    """`GET {path}`: `folder`'s index.html; `GET {path}/static/{name}`: its other .js and .css files."""
    router = APIRouter(include_in_schema=False)

    @cache
    def files() -> dict[str, Path]:
        return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}

    @cache
    def content(name: str) -> bytes:
        return files()[name].read_bytes()

    def page() -> Response:
        return Response(content("index.html"), media_type=MEDIA_TYPES[".html"],
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    def static(name: str) -> Response:
        found = files().get(name)
        if found is None or name == "index.html":
            raise HTTPException(404, "no such file")
        return Response(content(name), media_type=MEDIA_TYPES[found.suffix],
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    router.add_api_route(path, page, methods=["GET"])
    router.add_api_route(f"{path}/static/{{name}}", static, methods=["GET"])
    return router
