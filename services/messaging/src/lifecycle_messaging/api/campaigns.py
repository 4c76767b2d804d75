"""The campaigns admin API (Bearer `LIFECYCLE_MESSAGING_ADMIN_TOKEN`): docs/messaging.md "Campaigns".

`GET /v1/admin/campaigns` (`?include_deleted=true`), `POST` (a new campaign, 201), `GET /{id}` (with every
version), `PUT /{id}` (the next version; a deleted campaign comes back), `POST /{id}/disable` and `/enable` (the
next version, with the flag), `DELETE /{id}` (it starts nothing more, its waiting messages are cancelled; its
versions stay), `POST /{id}/preview` (its message rendered for a customer, nothing stored or sent).

A campaign is checked when saved: its template must be shipped and its own copy must compile and render in
the sandbox - a 400 naming the part and the line (`content.vi.html`, `line 3: unexpected '}'`), never a failure
at send time. Every change is effective in this instance at once and in the others within
`LIFECYCLE_MESSAGING_CAMPAIGNS_REFRESH_S`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.http import Engine, errors
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_messaging.api.campaign_schemas import (
    CREATE_EXAMPLES,
    CampaignDetail,
    CampaignIn,
    CampaignOut,
    PreviewIn,
    PreviewOut,
    VersionOut,
    campaign_out,
)
from lifecycle_messaging.api.deps import Campaigns, MessagingConfig
from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.db import campaigns as db
from lifecycle_messaging.db import contacts, latest, merges
from lifecycle_messaging.domain.audience import failing
from lifecycle_messaging.domain.campaigns import CAMPAIGN_ID_PATTERN, CampaignSpec, problems
from lifecycle_messaging.domain.consent import MARKETING, purpose_of
from lifecycle_messaging.domain.templates import render

router = APIRouter(prefix="/v1/admin/campaigns", tags=["campaigns"], dependencies=[AdminAccess],
                   responses=errors(401, 403))

CampaignPath = Annotated[str, Path(pattern=CAMPAIGN_ID_PATTERN, description="The campaign's id.")]


def _not_found(campaign_id: str) -> HTTPException:
    return HTTPException(404, f"no campaign {campaign_id}")


def _checked(spec: CampaignSpec) -> None:
    """A 400 naming every problem when the campaign may not be saved."""
    if found := problems(spec, templates=shipped()):
        raise HTTPException(400, {"code": "invalid_campaign", "message": "; ".join(f"{w}: {m}" for w, m in found),
                                  "errors": [{"field": where, "message": what} for where, what in found]})


async def _saved(engine: AsyncEngine, book: CampaignBook) -> None:
    await book.refresh(engine)  # effective in this instance now; in the others at their next refresh


@router.get("", response_model=list[CampaignOut])
async def list_campaigns(engine: Engine, include_deleted: Annotated[bool, Query()] = False) -> list[CampaignOut]:
    async with engine.connect() as conn:
        return [campaign_out(row) for row in await db.current(conn, include_deleted=include_deleted)]


@router.post("", status_code=201, response_model=CampaignOut, responses=errors(400, 409))
async def create_campaign(campaign: Annotated[CampaignIn, Body(openapi_examples=CREATE_EXAMPLES)], engine: Engine,
                          book: Campaigns) -> CampaignOut:
    """409: the id is taken (by a campaign deleted since, too: ids are never reused; PUT brings one back)."""
    _checked(campaign)
    spec = CampaignSpec.model_validate(campaign.model_dump(exclude={"id"}))
    async with engine.begin() as conn:
        row = await db.create(conn, campaign.id, spec)
    if row is None:
        raise HTTPException(409, {"code": "campaign_exists", "message": f"campaign {campaign.id} exists"})
    await _saved(engine, book)
    return campaign_out(row)


@router.get("/{campaign_id}", response_model=CampaignDetail, responses=errors(400, 404))
async def get_campaign(campaign_id: CampaignPath, engine: Engine) -> CampaignDetail:
    async with engine.connect() as conn:
        row = await db.one(conn, campaign_id)
        versions = await db.versions(conn, campaign_id) if row is not None else []
    if row is None:
        raise _not_found(campaign_id)
    return CampaignDetail(**campaign_out(row).model_dump(), versions=[
        VersionOut(version=v.version, created_at=v.created_at, definition=CampaignSpec.model_validate(v.definition))
        for v in versions])


@router.put("/{campaign_id}", response_model=CampaignOut, responses=errors(400, 404))
async def update_campaign(campaign_id: CampaignPath, spec: CampaignSpec, engine: Engine,
                          book: Campaigns) -> CampaignOut:
    """The next version (the same definition as the current one changes nothing). Messages already queued keep
    the version that made them."""
    _checked(spec)
    async with engine.begin() as conn:
        row = await db.add_version(conn, campaign_id, spec)
    if row is None:
        raise _not_found(campaign_id)
    await _saved(engine, book)
    return campaign_out(row)


async def _set_enabled(campaign_id: str, enabled: bool, engine: AsyncEngine, book: CampaignBook) -> CampaignOut:
    async with engine.begin() as conn:
        row = await db.one(conn, campaign_id, lock=True)
        if row is None:
            raise _not_found(campaign_id)
        if row.deleted_at is not None:
            raise HTTPException(409, {"code": "campaign_deleted",
                                      "message": f"campaign {campaign_id} is deleted: PUT it to bring it back"})
        spec = CampaignSpec.model_validate({**row.definition, "enabled": enabled})
        row = await db.add_version(conn, campaign_id, spec)
    await _saved(engine, book)
    return campaign_out(row)


@router.post("/{campaign_id}/disable", response_model=CampaignOut, responses=errors(400, 404, 409))
async def disable_campaign(campaign_id: CampaignPath, engine: Engine, book: Campaigns) -> CampaignOut:
    """It starts nothing more and its waiting messages are cancelled when due (`campaign_disabled`)."""
    return await _set_enabled(campaign_id, False, engine, book)


@router.post("/{campaign_id}/enable", response_model=CampaignOut, responses=errors(400, 404, 409))
async def enable_campaign(campaign_id: CampaignPath, engine: Engine, book: Campaigns) -> CampaignOut:
    return await _set_enabled(campaign_id, True, engine, book)


@router.delete("/{campaign_id}", status_code=204, responses=errors(400, 404))
async def delete_campaign(campaign_id: CampaignPath, engine: Engine, book: Campaigns) -> Response:
    """It starts nothing more and its waiting messages are cancelled when due; it and its versions stay
    (messages name them; `?include_deleted=true` lists it). 404 when there is none, or it was deleted already."""
    async with engine.begin() as conn:
        if not await db.delete(conn, campaign_id):
            raise _not_found(campaign_id)
    await _saved(engine, book)
    return Response(status_code=204)


@router.post("/{campaign_id}/preview", response_model=PreviewOut, responses=errors(400, 404))
async def preview_campaign(campaign_id: CampaignPath, body: PreviewIn, engine: Engine, book: Campaigns,
                           settings: MessagingConfig) -> PreviewOut:
    """The campaign's message rendered for a customer, as it would be queued now: their profile (the latest
    transition's), in their locale (or `locale`). Nothing is stored or sent. 404: no such campaign (or
    version), or messaging knows nothing of the customer."""
    async with engine.connect() as conn:
        row = await db.one(conn, campaign_id)
        if row is None:
            raise _not_found(campaign_id)
        version = body.version or row.version
        campaign = (await db.versions_of(conn, [(campaign_id, version)])).get((campaign_id, version))
        alias = (await merges.aliases_of(conn, [body.customer_id])).get(body.customer_id)
        customer = alias.survivor_id if alias else body.customer_id
        profile = (await latest.profiles_of(conn, [customer])).get(customer)
        address = (await contacts.known(conn, [customer])).get(customer)
    if campaign is None:
        raise HTTPException(404, f"campaign {campaign_id} has no version {version}")
    if profile is None:
        raise HTTPException(404, "messaging knows nothing of this customer yet (no transition seen)")
    traits = {**profile.traits, **({"locale": body.locale} if body.locale else {})}
    link = f"{settings.public_url.rstrip('/')}/v1/unsubscribe/preview" if purpose_of(campaign.template) == MARKETING \
        else None
    rendered = render(campaign.template, traits=traits, brand=settings.brand_name, catalogue=book.catalogue(campaign),
                      stage=profile.stage, default_locale=settings.default_locale, unsubscribe_url=link,
                      shop_url=settings.shop_url, shop_zone=settings.shop_zone)
    missed = failing(campaign.spec.audience, profile)
    return PreviewOut(campaign=campaign_id, version=campaign.version, customer_id=customer, template=campaign.template,
                      locale=rendered.locale, subject=rendered.subject, preheader=rendered.preheader,
                      from_name=rendered.from_name, text=rendered.text, html=rendered.html, in_audience=not missed,
                      failing=missed, address_known=address is not None)
