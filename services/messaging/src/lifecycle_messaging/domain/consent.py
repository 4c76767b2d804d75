"""Consent: who may be sent what, and which changes to it stand. Pure.

Consent is kept per address (normalised), channel (`email`) and purpose. Every template is either
`marketing` (it promotes: welcome, nudges, offers, invitations, win-backs, the feedback request a few days
later) or `transactional` (it is about something the customer just did and would expect to hear about:
the thank-you for their order, the confirmation of a reward they redeemed). Transactional mail is never held
back by consent; marketing is sent only to an address whose marketing consent allows it (`may_send`).

States: `subscribed` (said yes), `unsubscribed` (said no: the link, the API, a touchpoint), `bounced` (the
provider reported a hard bounce), `complained` (marked as spam), `blocked` (an operator said so). An
address with no recorded state has told nothing: under soft opt-in (the default, for a customer's own
address given while buying or signing up) marketing may go until they unsubscribe; a shop under stricter
rules (`LIFECYCLE_MESSAGING_REQUIRE_OPT_IN`) sends marketing only to `subscribed` addresses.

Which change stands (`change`), by its source:
- `api` (an operator, behind the API token): any state, over anything - the only way out of bounced,
  complained or blocked;
- `provider` (the mail provider's webhook): bounced or complained, over anything but blocked;
- `link` (the unsubscribe link): unsubscribed, over subscribed or nothing;
- `touchpoint` (an `Unsubscribed` / `Subscribed` track, an opt-in trait on identify): unsubscribed over
  subscribed or nothing; subscribed over nothing, and over unsubscribed only when `explicit` - a verified
  `Subscribed` track. An unverified event (a browser can name anyone) or a trait (sent again with every
  identify, possibly from a CRM that has not heard of the unsubscribe) may tell what nobody has told yet,
  never undo someone's no. Never over bounced, complained, blocked.
A change to the state already held changes nothing (and is not recorded).
"""

from __future__ import annotations

from typing import Literal

from lifecycle_messaging.domain.templates import TEMPLATES

EMAIL = "email"
MARKETING = "marketing"
TRANSACTIONAL = "transactional"
PURPOSES = (MARKETING, TRANSACTIONAL)

SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"
BLOCKED = "blocked"
STATES = (SUBSCRIBED, UNSUBSCRIBED, BOUNCED, COMPLAINED, BLOCKED)
State = Literal["subscribed", "unsubscribed", "bounced", "complained", "blocked"]

LINK = "link"
API = "api"
TOUCHPOINT = "touchpoint"
PROVIDER = "provider"
SOURCES = (LINK, API, TOUCHPOINT, PROVIDER)

# Facts about the mailbox or an operator's decision: only an operator lifts them.
_HARD = (BOUNCED, COMPLAINED, BLOCKED)

# About something the customer just did, expected, no offer in it: sent whatever their marketing consent.
TRANSACTIONAL_TEMPLATES = frozenset({"thank_you_feedback", "reward_redeemed"})
PURPOSE_OF = {template: TRANSACTIONAL if template in TRANSACTIONAL_TEMPLATES else MARKETING for template in TEMPLATES}
# The notice to the shop's operator that a webhook endpoint was disabled (`domain.webhooks`): not marketing.
PURPOSE_OF["webhook_endpoint_disabled"] = TRANSACTIONAL


def purpose_of(template: str) -> str:
    """A template's purpose; one not classified is marketing (the safe side)."""
    return PURPOSE_OF.get(template, MARKETING)


def may_send(purpose: str, state: str | None, *, require_opt_in: bool) -> bool:
    """Whether a message of `purpose` may go to an address whose consent to marketing is `state` (None:
    nothing recorded)."""
    if purpose == TRANSACTIONAL:
        return True
    if state is None:
        return not require_opt_in
    return state == SUBSCRIBED


def change(current: str | None, new: str, *, source: str, explicit: bool = True) -> str | None:
    """The state after `new` is told by `source` where `current` is held; None: it changes nothing."""
    if new == current:
        return None
    if source == API:
        allowed = True
    elif source == PROVIDER:
        allowed = new in (BOUNCED, COMPLAINED) and current != BLOCKED
    elif source == LINK:
        allowed = new == UNSUBSCRIBED and current not in _HARD
    elif source == TOUCHPOINT:
        if new == UNSUBSCRIBED:
            allowed = current not in _HARD
        else:
            allowed = new == SUBSCRIBED and (current is None or (explicit and current == UNSUBSCRIBED))
    else:
        allowed = False
    return new if allowed else None


# Traits that say what a person told about marketing email, and what each value means.
_OPT_IN_TRAITS = ("emailOptIn", "email_opt_in", "marketingOptIn")
_OPT_OUT_TRAITS = ("unsubscribed", "emailUnsubscribed")


def state_from_traits(traits: dict[str, object]) -> str | None:
    """The state an identify's traits tell (`unsubscribed: true`, `emailOptIn: false` -> unsubscribed;
    `emailOptIn: true`, `unsubscribed: false` -> subscribed); None: they tell nothing (only booleans
    count). A no anywhere wins over a yes."""
    told = [value for name in _OPT_IN_TRAITS if isinstance(value := traits.get(name), bool)]
    told += [not value for name in _OPT_OUT_TRAITS if isinstance(value := traits.get(name), bool)]
    if not told:
        return None
    return SUBSCRIBED if all(told) else UNSUBSCRIBED
