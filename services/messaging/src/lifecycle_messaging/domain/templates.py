"""The shipped templates, and a template rendered for a customer in their locale. Pure.

Which message a transition (or a touchpoint, or a loyalty event) calls for is the campaigns' business
(`domain.campaigns`, `campaigns/default.yaml`); a campaign names its template.

The templates themselves are data (`lifecycle_messaging/templates/<template>/<locale>.toml`, loaded
by `lifecycle_messaging.catalogue`), rendered in Jinja2's sandbox (`domain.sandbox`). `render`
chooses the locale from the customer's `locale` trait (`domain.locales`) and fills the variables
from their profile; a template that fails for this customer's values falls back to the next locale
of the chain, so a validated catalogue never fails a send. A rendered message is stored in a
message row's columns (`Rendered.columns`, read back by `Rendered.from_columns`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import escape

from lifecycle_messaging.domain.addresses import header_safe
from lifecycle_messaging.domain.local_time import UTC_ZONE, customer_zone, local_date
from lifecycle_messaging.domain.locales import FALLBACK, locale_chain
from lifecycle_messaging.domain.sandbox import Compiled, TemplateError, render_parts

# Every shipped template (`templates/<name>/`), each the template of a default campaign of the same name.
TEMPLATES = ("welcome", "consideration_nudge", "thank_you_feedback", "retention_offer", "referral_invite",
             "come_back_offer", "we_miss_you", "welcome_back", "feedback_request", "cart_reminder",
             "tier_reached", "points_expiring", "reward_redeemed")

# template -> locale -> the validated template
Catalogue = Mapping[str, Mapping[str, Compiled]]

# Where each variable comes from in the profile's traits, first found wins. `name` is a first name
# when there is one; a full name is used whole (a Vietnamese full name starts with the family name).
TRAITS_OF = {
    "name": ("firstName", "first_name", "name"),
    "points": ("points", "loyaltyPoints", "loyalty_points"),
    "tier": ("tier", "loyaltyTier", "loyalty_tier"),
    "last_product": ("lastProduct", "last_product"),
    "clv_band": ("clvBand", "clv_band"),
}


@dataclass(frozen=True)
class Rendered:
    """A message ready to send: one-line subject and display name, a text and an HTML body."""

    template: str
    locale: str
    subject: str
    text: str
    html: str
    preheader: str = ""
    from_name: str = ""

    def columns(self) -> dict[str, str | None]:
        """The message row's columns for it (besides `subject` and `template`): `body` is the text."""
        return {"body": self.text, "html": self.html or None, "locale": self.locale or None,
                "preheader": self.preheader or None, "from_name": self.from_name or None}

    @classmethod
    def from_columns(cls, *, template: str, subject: str, body: str, html: str | None = None,
                     locale: str | None = None, preheader: str | None = None,
                     from_name: str | None = None) -> Rendered:
        """A row read back; a row from before the parts were columns (html NULL) is a text-only message."""
        return cls(template=template, locale=locale or "", subject=subject, text=body, html=html or "",
                   preheader=preheader or "", from_name=from_name or "")


def _text(value: object, *, limit: int = 200) -> str | None:
    return (header_safe(value, limit=limit) or None) if isinstance(value, str) else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) > 1e15:
        return None
    return int(value)


def _day(value: object, traits: Mapping[str, Any], shop_zone: ZoneInfo) -> object:
    """An instant's day on the customer's calendar (their `timezone` trait, else the shop's); None if not one."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    return local_date(value, customer_zone(traits.get("timezone"), shop=shop_zone))


def variables(traits: Mapping[str, Any], *, brand: str, stage: str | None, locale: str,
              unsubscribe_url: str | None = None, values: Mapping[str, object] | None = None,
              shop_url: str | None = None, shop_zone: ZoneInfo = UTC_ZONE) -> dict[str, object]:
    """Every template variable (`sandbox.VARIABLES`): from the traits, overridden by `values` (what the
    caller knows better, e.g. the loyalty balance, a reward, when points expire), each cleaned to one line of
    text, a whole number or a day (`expires_at` becomes `expires_on`, the day in the customer's zone)."""
    found: dict[str, object] = {
        variable: next((traits[name] for name in names if traits.get(name) not in (None, "")), None)
        for variable, names in TRAITS_OF.items()}
    found.update(values or {})
    return {"name": _text(found["name"]), "points": _count(found["points"]), "tier": _text(found["tier"]),
            "last_product": _text(found["last_product"]), "clv_band": _text(found["clv_band"]),
            "stage": stage or "", "brand": header_safe(brand) or brand, "locale": locale,
            "unsubscribe_url": _text(unsubscribe_url, limit=4000),  # ours, signed: never cut
            "expires_on": _day(found.get("expires_at"), traits, shop_zone), "reward": _text(found.get("reward")),
            "cost": _count(found.get("cost")), "shop_url": _text(shop_url, limit=2000)}


_BLANK_LINES = re.compile(r"\n{3,}")


def _tidy(body: str) -> str:
    """Line ends as \\n, no trailing spaces, at most one blank line in a row, one final line end."""
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"


def html_document(body: str, *, locale: str, subject: str, preheader: str) -> str:
    """The HTML part's body in a document: its language, its title and a hidden preview line."""
    hidden = (f'<div style="display:none;max-height:0;overflow:hidden">{escape(preheader)}</div>\n'
              if preheader else "")
    return (f'<!DOCTYPE html>\n<html lang="{escape(locale)}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(subject)}</title>\n</head>\n<body>\n{hidden}{body}</body>\n</html>\n")


def render(template: str, *, traits: Mapping[str, Any], brand: str, catalogue: Catalogue,
           stage: str | None = None, default_locale: str = FALLBACK, unsubscribe_url: str | None = None,
           values: Mapping[str, object] | None = None, shop_url: str | None = None,
           shop_zone: ZoneInfo = UTC_ZONE) -> Rendered:
    """`template` for this customer, in the first locale of their chain it renders in (`locales`); any
    other locale it has comes after. Raises only if it renders in none (never, for a validated catalogue)."""
    available = catalogue[template]
    chain = [tag for tag in locale_chain(traits.get("locale"), default=default_locale) if tag in available]
    failure: TemplateError | None = None
    for locale in [*chain, *sorted(set(available) - set(chain))]:
        try:
            parts = render_parts(available[locale], variables(
                traits, brand=brand, stage=stage, locale=locale, unsubscribe_url=unsubscribe_url, values=values,
                shop_url=shop_url, shop_zone=shop_zone))
        except TemplateError as error:
            failure = failure or error
            continue
        subject, preheader = header_safe(parts["subject"]), header_safe(parts["preheader"])
        return Rendered(template=template, locale=locale, subject=subject, preheader=preheader,
                        from_name=header_safe(parts["from_name"]) or header_safe(brand),
                        text=_tidy(parts["text"]),
                        html=html_document(_tidy(parts["html"]), locale=locale, subject=subject, preheader=preheader))
    raise failure or LookupError(f"template {template!r} has no locale")
