"""Per-stage templates (English) and the choice of template for a transition. Pure.

Along the journey only forward moves send a message: a customer pushed back by a refund is not
welcomed again. Drifting off it (at_risk, then lapsed) sends a come-back offer, then a note that
we miss them; coming back from a drift (a `reactivated` transition) sends a welcome back - never
the journey's message for the stage they land on ("thank you for your first order").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from lifecycle_shared.stages import DRIFT, RANK, REACTIVATED, is_drift, is_forward

from lifecycle_messaging.domain.addresses import header_safe

TEMPLATE_FOR_STAGE = {
    "awareness": "welcome",
    "consideration": "consideration_nudge",
    "purchase": "thank_you_feedback",
    "retention": "retention_offer",
    "loyalty": "referral_invite",
    "at_risk": "come_back_offer",
    "lapsed": "we_miss_you",
}
WELCOME_BACK = "welcome_back"
_DRIFT_DEPTH: dict[str | None, int] = {stage: depth for depth, stage in enumerate(DRIFT)}

SUBJECTS = {
    "welcome": "Welcome to {{ brand }}",
    "consideration_nudge": "Still deciding? Here is what others loved at {{ brand }}",
    "thank_you_feedback": "Thank you for your order, {{ name }} - how did we do?",
    "retention_offer": "A little something for coming back, {{ name }}",
    "referral_invite": "Share {{ brand }} with a friend - you both get rewards",
    "come_back_offer": "15% off your next order at {{ brand }} - we saved it for you",
    "we_miss_you": "We miss you at {{ brand }}",
    "welcome_back": "Welcome back to {{ brand }}",
}

BODIES = {
    "welcome": "Hi {{ name }},\n\nWelcome to {{ brand }}! We are glad you found us.\n",
    "consideration_nudge": "Hi {{ name }},\n\nStill comparing? Our guides and FAQ answer the "
                           "usual questions, and our team is one reply away.\n",
    "thank_you_feedback": "Hi {{ name }},\n\nThank you for your first order with {{ brand }}. "
                          "Would you tell us how it went? Just reply to this email.\n",
    "retention_offer": "Hi {{ name }},\n\nThanks for shopping with us again. Here is 10% off "
                       "your next order: WELCOMEBACK10.\n",
    "referral_invite": "Hi {{ name }},\n\nYou are one of our best customers. Invite a friend: "
                       "you both earn bonus points when they order.\n",
    "come_back_offer": "Hi {{ name }},\n\nIt has been a while since your last order with {{ brand }}. "
                       "Here is 15% off your next one: COMEBACK15.\n",
    "we_miss_you": "Hi {{ name }},\n\nWe have not seen you at {{ brand }} for a long time, and we miss you. "
                   "Whatever you need next, we are one reply away.\n",
    "welcome_back": "Hi {{ name }},\n\nWelcome back to {{ brand }}! It is good to see you again, "
                    "and thank you for your order.\n",
}

_env = Environment(
    loader=DictLoader({f"{n}.subject": s for n, s in SUBJECTS.items()} | {f"{n}.body": b for n, b in BODIES.items()}),
    undefined=StrictUndefined, autoescape=select_autoescape(default=False), keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Rendered:
    template: str
    subject: str
    body: str


def template_for(*, from_stage: str | None, to_stage: str, reason: str) -> str | None:
    """The message a transition calls for, if any."""
    if is_drift(from_stage) and to_stage in RANK:
        # Back onto the journey: a welcome back. Any other way off a drift stage has no words of its own.
        return WELCOME_BACK if reason == REACTIVATED else None
    if is_drift(to_stage):  # deeper into a drift only: at_risk -> lapsed, never lapsed -> at_risk
        return TEMPLATE_FOR_STAGE[to_stage] if _DRIFT_DEPTH.get(from_stage, -1) < _DRIFT_DEPTH[to_stage] else None
    if to_stage not in TEMPLATE_FOR_STAGE or not is_forward(from_stage, to_stage):  # only forward moves send
        return None
    return TEMPLATE_FOR_STAGE[to_stage]


def render(template: str, *, traits: dict[str, Any], brand: str) -> Rendered:
    name = traits.get("firstName") or traits.get("name")
    name = name if isinstance(name, str) and name.strip() else "there"
    values = {"name": name, "brand": brand}
    return Rendered(template=template,
                    subject=header_safe(_env.get_template(f"{template}.subject").render(values)),
                    body=_env.get_template(f"{template}.body").render(values))
