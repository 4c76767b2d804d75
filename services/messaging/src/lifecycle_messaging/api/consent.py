"""Consent by API, the one-click unsubscribe link, and the mail provider's bounces and complaints
(docs/messaging.md "Consent and unsubscribe").

- `PUT /v1/consent/email/marketing` (API token): an operator sets an address's (or a customer's known
  address's) consent to any state - the only way to lift a bounce, a complaint or a block.
- `POST /v1/providers/events` (API token): what a mail provider's webhook posts; hard bounces and
  complaints stop marketing to the address.
- `GET /v1/unsubscribe/{token}`: a confirmation page with a button (a form POST); it changes nothing, so a
  link scanner that opens it unsubscribes nobody. `POST /v1/unsubscribe/{token}` (RFC 8058 one-click: a mail
  client posts `List-Unsubscribe=One-Click`; the page's button posts the same): unsubscribes. No token
  needed but the link's own; no personal data in either answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import HTMLResponse
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.http import CustomerId, Engine, errors
from markupsafe import escape
from pydantic import BaseModel, Field, model_validator

from lifecycle_messaging.api.deps import MessagingConfig, Now
from lifecycle_messaging.consenting import Told, tell
from lifecycle_messaging.db import consent, contacts
from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.consent import API, BOUNCED, COMPLAINED, LINK, PROVIDER, UNSUBSCRIBED, State
from lifecycle_messaging.domain.unsubscribe import TokenError, verify

operator = APIRouter(prefix="/v1", tags=["consent"], dependencies=[ApiAccess], responses=errors(401, 403))
public = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])


class ConsentIn(BaseModel):
    """Whose consent: an `email`, or a `customer_id` whose address messaging knows - exactly one."""

    email: str | None = Field(default=None, max_length=254)
    customer_id: str | None = Field(default=None, min_length=1, max_length=200, pattern="^[^\x00]+$")
    state: State

    @model_validator(mode="after")
    def _one_subject(self) -> ConsentIn:
        if (self.email is None) == (self.customer_id is None):
            raise ValueError("give exactly one of email and customer_id")
        return self


class ConsentOut(BaseModel):
    state: str
    previous_state: str | None
    changed: bool  # False: it was in that state already


@operator.put("/consent/{channel}/{purpose}", response_model=ConsentOut, responses=errors(400, 404))
async def put_consent(channel: Literal["email"], purpose: Literal["marketing"], body: ConsentIn, engine: Engine,
                      now: Now, settings: MessagingConfig) -> ConsentOut:
    """Set an address's consent. `subscribed` is an explicit opt-in: it lifts an erased address's suppression
    marker (docs/erasure.md). 400: the body names no valid address (or both, or neither); 404: messaging knows no
    address for `customer_id`."""
    async with engine.begin() as conn:
        if body.customer_id is not None:
            known = (await contacts.known(conn, [body.customer_id])).get(body.customer_id)
            if known is None:
                raise HTTPException(404, "no address is known for this customer_id")
            address = known.email
        elif (given := valid_address(body.email)) is not None:
            address = given
        else:
            raise HTTPException(400, {"message": "email: not a valid address",
                                      "errors": [{"field": "email", "message": "not a valid address"}]})
        before = (await consent.states_of(conn, [address], channel=channel, purpose=purpose, lock=True)).get(address)
        applied = await tell(conn, [Told(address, body.state, API, customer_id=body.customer_id)], now=now,
                             channel=channel, purpose=purpose, erasure_pepper=pepper_of(settings.erasure_pepper))
    return ConsentOut(state=body.state, previous_state=before, changed=bool(applied))


class ConsentChangeOut(BaseModel):
    state: str
    previous_state: str | None
    source: str  # link | api | touchpoint | provider
    reference: str | None  # the link's message id, the touchpoint's event id, the provider's message id
    customer_id: str | None
    at: datetime


class CustomerConsentOut(BaseModel):
    email: str
    state: str | None  # None: nothing recorded (soft opt-in unless REQUIRE_OPT_IN)
    changes: list[ConsentChangeOut]  # every change, oldest first


@operator.get("/consent/{channel}/{purpose}/customers/{customer_id:path}", response_model=CustomerConsentOut,
              responses=errors(400, 404))
async def get_customer_consent(channel: Literal["email"], purpose: Literal["marketing"], customer_id: CustomerId,
                               engine: Engine) -> CustomerConsentOut:
    """The consent of the address messaging knows for a customer, and how it came to be (the append-only
    log). 404: no address is known for the customer."""
    async with engine.connect() as conn:
        known = (await contacts.known(conn, [customer_id])).get(customer_id)
        if known is None:
            raise HTTPException(404, "no address is known for this customer_id")
        state = (await consent.states_of(conn, [known.email], channel=channel, purpose=purpose)).get(known.email)
        changes = await consent.history(conn, known.email, channel=channel, purpose=purpose)
    return CustomerConsentOut(email=known.email, state=state, changes=[ConsentChangeOut(**c) for c in changes])


class ProviderEvent(BaseModel):
    """One event as a mail provider's webhook posts it."""

    type: Literal["bounce", "complaint"]
    email: str = Field(max_length=254)
    message_id: str | None = Field(default=None, max_length=200, pattern="^[^\x00]*$")  # kept as the reference
    at: datetime | None = None
    # Only a hard (permanent) bounce stops marketing; a soft one (a full mailbox) is counted and left.
    bounce_type: Literal["hard", "soft"] = "hard"


class ProviderEventsOut(BaseModel):
    recorded: int  # consent changes that stand
    unchanged: int  # the address was in that state already (or blocked)
    ignored: int  # soft bounces


@operator.post("/providers/events", response_model=ProviderEventsOut, responses=errors(400))
async def provider_events(events: Annotated[list[ProviderEvent], Field(max_length=1000)], engine: Engine,
                          now: Now) -> ProviderEventsOut:
    """Bounces and complaints (at most 1,000 a request): a hard bounce records `bounced`, a complaint
    `complained`. 400 names the first event whose address is not valid."""
    told: list[Told] = []
    for index, event in enumerate(events):
        address = valid_address(event.email)
        if address is None:
            raise HTTPException(400, {"message": f"{index}.email: not a valid address",
                                      "errors": [{"field": f"{index}.email", "message": "not a valid address"}]})
        if event.type == "bounce" and event.bounce_type == "soft":
            continue
        told.append(Told(address, BOUNCED if event.type == "bounce" else COMPLAINED, PROVIDER,
                         reference=event.message_id))
    async with engine.begin() as conn:
        applied = await tell(conn, told, now=now)
    return ProviderEventsOut(recorded=len(applied), unchanged=len(told) - len(applied),
                             ignored=len(events) - len(told))


Token = Annotated[str, Path(min_length=1, max_length=100, description="The token of the link in the email.")]
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
        f"</head>\n<body style=\"font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em\">\n"
        f"<h1>{escape(title)}</h1>\n{body}</body>\n</html>\n", headers=_PAGE_HEADERS)


def _verified(token: str, settings: MessagingConfig, now: datetime) -> str:
    """The message id the token names; 400 (malformed or not ours) or 410 (expired), naming the problem."""
    try:
        return verify(token, secret=settings.unsubscribe_key, now=now).message_id
    except TokenError as error:
        raise HTTPException(410 if error.problem == "expired" else 400,
                            {"code": f"token_{error.problem}", "message": str(error)}) from None


# The pages are HTML; their errors JSON (ErrorBody), as every error of the service.
_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}


@public.get("/{token}", response_model=None, responses={**_PAGE, **errors(400, 410)})
async def unsubscribe_page(token: Token, settings: MessagingConfig, now: Now) -> HTMLResponse:
    """The confirmation page: a button that posts the unsubscribe. Opening it changes nothing."""
    _verified(token, settings, now)
    brand = escape(settings.brand_name)
    return _page("Unsubscribe", f"<p>Stop marketing email from {brand}? Messages about your orders still come.</p>\n"
                                '<form method="post">\n<input type="hidden" name="List-Unsubscribe" '
                                'value="One-Click">\n<button type="submit">Unsubscribe</button>\n</form>\n')


@public.post("/{token}", response_model=None, responses={**_PAGE, **errors(400, 404, 410)})
async def unsubscribe(token: Token, engine: Engine, settings: MessagingConfig, now: Now) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058): the address the link's message went to no longer gets marketing
    email. 200 also when it had unsubscribed already; 404 when the message is gone or had no address."""
    message_id = _verified(token, settings, now)
    async with engine.begin() as conn:
        found = await consent.message_recipient(conn, message_id)
        address = valid_address(found[0]) if found else None
        if found is None or address is None:
            raise HTTPException(404, "this link's message is not known")
        await tell(conn, [Told(address, UNSUBSCRIBED, LINK, reference=message_id, customer_id=found[1])], now=now)
    return _page("Unsubscribed", f"<p>You will no longer receive marketing email from "
                                 f"{escape(settings.brand_name)}.</p>\n")
