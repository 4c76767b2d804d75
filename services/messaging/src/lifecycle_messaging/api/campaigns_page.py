"""The campaigns page (`/campaigns`): per campaign sent / held / suppressed by reason and the lift with its
interval, drawn in the browser from `GET /v1/campaigns/lift`.

Served by messaging, not the stage engine's dashboard: the figures live in messaging's database, and the
dashboard's Content-Security-Policy allows API calls to its own origin only - the page reads the API of the
origin that serves it, with the token given in the address's fragment (`#token=...`) or a form, as the
dashboard does. So these routes are open, like `/docs`; the page holds no data. The dashboard links here
(its `#dashboard=` fragment, when given, links back). Files come from a fixed list, never a request's path.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

HERE = Path(__file__).parent.parent / "campaigns_page"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@cache
def _file(name: str) -> bytes:
    return (HERE / name).read_bytes()


@router.get("/campaigns")
def campaigns_page() -> Response:
    return Response(_file("index.html"), media_type="text/html; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/campaigns/static/{name}")
def campaigns_static(name: str) -> Response:
    if name not in ("campaigns.js", "campaigns.css"):
        raise HTTPException(404, "no such file")
    return Response(_file(name), media_type=MEDIA_TYPES[Path(name).suffix],
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
