"""`GET /finance`: a page drawing the finance API (the admin token in the fragment `#token=...` or a form).

The page holds no data, so it is served without a token, like `/docs`; only its two fixed files are served
(no path from the request reaches the file system), scripts from this origin only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

HERE = Path(__file__).parent / "finance_page"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@cache
def _read(name: str) -> bytes:
    return (HERE / name).read_bytes()


@router.get("/finance")
async def page() -> Response:
    return Response(_read("finance.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/finance.js")
async def script() -> Response:
    return Response(_read("finance.js"), media_type="text/javascript; charset=utf-8", headers=HEADERS)
