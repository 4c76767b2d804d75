"""The key API (docs/erasure.md, crypto-shredding): the other services' way to the customers' data keys.

`POST /internal/keys` gives the key of each id hash, creating what is missing (the outbox relays seal with them);
`POST /internal/keys/lookup` the keys of key ids that still exist (consumers open with them; a missing one was
erased). Bearer token: derived from LIFECYCLE_ERASURE_PEPPER (`lifecycle_shared.sealing.keys_token`), which the
four services share - not the read-API token a storefront holds. Unset pepper: 403, sealing is off.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from lifecycle_shared.auth import token_matches
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.http import Engine, Settings, errors
from lifecycle_shared.keyring import MAX_IDS_PER_CALL
from lifecycle_shared.sealing import keys_token
from pydantic import BaseModel, Field

from lifecycle_ingest.db import subject_keys as db

keys_bearer = HTTPBearer(auto_error=False, scheme_name="KeysToken",
                         description="HMAC-SHA256(LIFECYCLE_ERASURE_PEPPER, 'lifecycle-keys-v1'), hex, as a Bearer "
                                     "token: for the Lifecycle services only.")


async def keys_access(settings: Settings,
                      bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(keys_bearer)]) -> None:
    pepper = pepper_of(settings.erasure_pepper)
    if pepper is None:
        raise HTTPException(403, "key API disabled: set LIFECYCLE_ERASURE_PEPPER")
    presented = bearer.credentials if bearer is not None else ""
    if not token_matches(presented, (keys_token(pepper).encode(),)):
        raise HTTPException(401, "missing or invalid key API token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/internal/keys", tags=["keys"], dependencies=[Depends(keys_access)],
                   responses=errors(401, 403))

IdHash = Annotated[str, Field(pattern="^[0-9a-f]{64}$", description="HMAC-SHA256(pepper, customer id), hex")]
KeyId = Annotated[str, Field(pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


class KeysForIds(BaseModel):
    id_hashes: list[IdHash] = Field(min_length=1, max_length=MAX_IDS_PER_CALL)


class SubjectKeyOut(BaseModel):
    key_id: str
    key: str = Field(description="The AES-256 key, base64")


class SubjectKeys(BaseModel):
    keys: dict[str, SubjectKeyOut] = Field(description="By id hash")


class KeysLookup(BaseModel):
    key_ids: list[KeyId] = Field(min_length=1, max_length=MAX_IDS_PER_CALL)


class FoundKeys(BaseModel):
    keys: dict[str, str] = Field(description="Base64 keys by key id; an id left out was erased (or never was)")


@router.post("", response_model=SubjectKeys, responses=errors(400))
async def keys_for_ids(body: KeysForIds, engine: Engine) -> SubjectKeys:
    async with engine.begin() as conn:
        found = await db.keys_for_hashes(conn, sorted(set(body.id_hashes)))
    return SubjectKeys(keys={h: SubjectKeyOut(key_id=key_id, key=base64.b64encode(key).decode())
                             for h, (key_id, key) in found.items()})


@router.post("/lookup", response_model=FoundKeys, responses=errors(400))
async def lookup_keys(body: KeysLookup, engine: Engine) -> FoundKeys:
    async with engine.connect() as conn:
        found = await db.keys_by_id(conn, sorted(set(body.key_ids)))
    return FoundKeys(keys={key_id: base64.b64encode(key).decode() for key_id, key in found.items()})
