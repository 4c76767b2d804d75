"""Bearer-token access to the read APIs (profiles, messages, balances): `LIFECYCLE_API_TOKENS`.

Applied per router: `APIRouter(..., dependencies=[ApiAccess], responses=errors(401, 403))`. The
operational routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`) stay open.
Tokens are never logged: they are SecretStr in the settings and no message quotes the one sent.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lifecycle_shared.http import Settings

# FastAPI's HTTPBearer, so OpenAPI documents the scheme ("ApiToken") on every guarded route; its
# auto_error is off so that the answers (403 disabled, 401 + WWW-Authenticate) are ours.
api_bearer = HTTPBearer(auto_error=False, scheme_name="ApiToken",
                        description="One of the tokens in LIFECYCLE_API_TOKENS, as a Bearer token. "
                                    "For server-side callers only: never ship it to a browser.")


def token_matches(presented: str, tokens: tuple[bytes, ...]) -> bool:
    """Compares with every configured token, each in constant time (no early exit)."""
    candidate = presented.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token)
    return matched


async def api_token(settings: Settings,
                    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(api_bearer)]) -> None:
    tokens = settings.api_tokens
    if not tokens:
        raise HTTPException(403, "read API disabled: set LIFECYCLE_API_TOKENS")
    presented = bearer.credentials if bearer is not None else ""
    if not token_matches(presented, tuple(t.get_secret_value().encode() for t in tokens)):
        raise HTTPException(401, "missing or invalid API token: send `Authorization: Bearer <token>` with one "
                                 "of LIFECYCLE_API_TOKENS", headers={"WWW-Authenticate": "Bearer"})


ApiAccess = Depends(api_token)


# The admin APIs (ingest's keys and sources, the stage engine's rules and replays): `<PREFIX>ADMIN_TOKEN`.
admin_bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken",
                          description="The service admin token (`LIFECYCLE_<SERVICE>_ADMIN_TOKEN`), Bearer.")


async def admin_token(settings: Settings,
                      bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)]) -> None:
    if settings.admin_token is None:
        raise HTTPException(403, f"admin API disabled: set {settings.admin_token_variable()}")
    presented = bearer.credentials if bearer is not None else ""
    if not token_matches(presented, (settings.admin_token.get_secret_value().encode(),)):
        raise HTTPException(401, "missing or invalid admin token", headers={"WWW-Authenticate": "Bearer"})


AdminAccess = Depends(admin_token)
