"""Messaging's templates as data: every shipped template in every locale renders naturally with and
without the optional variables; the sandbox refuses Python's internals; validation names the part and
the line; the locale falls back `vi-VN` -> `vi` -> the shop's default -> English. Pure, no I/O but the
package's own template files."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from email import message_from_bytes, message_from_string, policy
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifecycle_messaging.catalogue import SHIPPED, load, shipped
from lifecycle_messaging.delivery import build_email
from lifecycle_messaging.domain.addresses import header_safe
from lifecycle_messaging.domain.locales import choose_locale, locale_chain, normalised
from lifecycle_messaging.domain.sandbox import (
    TemplateError,
    TemplateSource,
    compile_source,
    parse_source,
    render_parts,
    validate,
)
from lifecycle_messaging.domain.templates import TEMPLATES, TRAITS_OF, Rendered, render, variables
from lifecycle_messaging.settings import MessagingSettings
from pydantic import ValidationError

LOCALES = ("en", "vi", "th")
FULL = {"firstName": "Minh", "points": 1250, "tier": "Gold", "lastProduct": "Bình giữ nhiệt", "clvBand": "high"}
GREETING = {"en": ("Hi Minh,", "Hi there,"), "vi": ("Chào Minh,", "Chào bạn,"),
            "th": ("สวัสดีค่ะ คุณMinh", "สวัสดีค่ะ คุณลูกค้า")}
POINTS = {"en": "1,250", "vi": "1.250", "th": "1,250"}
UNSUBSCRIBE = "https://shop.example/u?t=abc&x=1"
# What a loyalty event tells on top (`LoyaltyFact.values`): the expiry at 20:00 UTC is still 31 December in UTC.
LOYALTY = {"expires_at": datetime(2026, 12, 31, 20, 0, tzinfo=UTC), "reward": "free_shipping", "cost": 1250}
SHOP_URL = "https://shop.example/rewards"
DAY = {"en": "31 December 2026", "vi": "31/12/2026", "th": "31 ธันวาคม 2569"}
SETTINGS = MessagingSettings(environment="development", smtp_from="Lifecycle <hello@shop.example>")


def source(**parts: str) -> TemplateSource:
    return TemplateSource(**{"subject": "Hello", "text": "Hi\n", "html": "<p>Hi</p>\n", **parts})


def test_every_template_ships_in_english_vietnamese_and_thai():
    catalogue = shipped()
    assert set(catalogue) == set(TEMPLATES)
    assert {template: sorted(locales) for template, locales in catalogue.items()} == {
        template: sorted(LOCALES) for template in TEMPLATES}


def test_template_files_are_composed_unicode():
    """Vietnamese tone marks as one code point each (NFC), as keyboards and search engines write them."""
    for folder in SHIPPED.iterdir():
        for file in folder.iterdir() if folder.is_dir() else ():
            text = file.read_text("utf-8")
            assert unicodedata.normalize("NFC", text) == text, file.name


def _leftovers(text: str) -> list[str]:
    """What a reader must never see: an unrendered tag, a None, an empty salutation, a doubled space."""
    found = [token for token in ("{{", "}}", "{%", "%}", "None", "undefined") if token in text]
    found += re.findall(r"(?:Hi|Chào|คุณ)\s*,|\s,|,,|  ", text)
    return found


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("known", [True, False], ids=["profile-known", "profile-unknown"])
def test_every_template_and_locale_renders_naturally(template, locale, known):
    traits = {**(FULL if known else {}), "locale": locale}
    rendered = render(template, traits=traits, brand="Mộc Shop", catalogue=shipped(), stage="retention",
                      unsubscribe_url=UNSUBSCRIBE if known else None, values=LOYALTY if known else None,
                      shop_url=SHOP_URL if known else None)
    assert rendered.locale == locale
    for part in ("subject", "preheader", "from_name", "text", "html"):
        value = getattr(rendered, part)
        assert value and not _leftovers(value), (part, value, _leftovers(value))
    assert rendered.subject.isprintable() and rendered.from_name == "Mộc Shop"
    greeting = GREETING[locale][0 if known else 1]
    assert rendered.text.startswith(greeting + "\n\n") and f"<p>{greeting}</p>" in rendered.html
    assert "<p>" not in rendered.text and f'<html lang="{locale}">' in rendered.html
    assert ("Minh" in rendered.text) is known and ("Minh" in rendered.html) is known
    # the link, escaped in the HTML; no unsubscribe line when there is no link
    assert (UNSUBSCRIBE in rendered.text) is known and ("t=abc&amp;x=1" in rendered.html) is known
    if known and "points" in rendered.text:
        assert POINTS[locale] in rendered.text
    if template == "points_expiring":  # the day as the locale writes it, in the subject and the body
        assert (DAY[locale] in rendered.subject) is known and (DAY[locale] in rendered.text) is known
    assert SHOP_URL not in rendered.text or known


@pytest.mark.parametrize(("locale", "written"), [
    ("en", "5 January 2027"), ("vi", "05/01/2027"), ("vi-VN", "05/01/2027"), ("th", "5 มกราคม 2570"),
    ("th-TH", "5 มกราคม 2570")])
def test_a_day_is_written_as_the_locale_writes_it(locale, written):
    compiled = validate(source(text="{{ expires_on|date }}|{{ cost|date }}"))
    assert render_parts(compiled, {"expires_on": date(2027, 1, 5), "locale": locale})["text"] == f"{written}|"


def test_the_expiry_day_is_the_customers_own():
    """20:00 UTC on 31 December is already 1 January in Saigon (their trait) and in a Bangkok shop (its zone)."""
    def day(traits: dict, zone: str) -> object:
        return variables(traits, brand="B", stage=None, locale="vi", values=LOYALTY,
                         shop_zone=ZoneInfo(zone))["expires_on"]
    assert day({}, "UTC") == date(2026, 12, 31)
    assert day({"timezone": "Asia/Ho_Chi_Minh"}, "UTC") == day({}, "Asia/Bangkok") == date(2027, 1, 1)
    assert day({"timezone": "Mars/Olympus"}, "UTC") == date(2026, 12, 31)  # no such zone: the shop's


@pytest.mark.parametrize("locale", LOCALES)
def test_the_points_reminder_links_to_the_shop_only_when_its_url_is_set(locale):
    def reminder(shop_url: str | None) -> Rendered:
        return render("points_expiring", traits={"locale": locale}, brand="B", catalogue=shipped(),
                      values={"points": 100, **LOYALTY}, shop_url=shop_url)
    linked, plain = reminder(SHOP_URL), reminder(None)
    assert SHOP_URL in linked.text and f'href="{SHOP_URL}"' in linked.html
    assert "http" not in plain.text and "href" not in plain.html


def test_a_full_name_is_used_whole_and_a_non_string_is_no_name():
    assert variables({"name": "Nguyễn Thị Lan"}, brand="B", stage="s", locale="vi")["name"] == "Nguyễn Thị Lan"
    assert variables({"firstName": ["x"], "name": "  "}, brand="B", stage="s", locale="vi")["name"] is None
    assert variables({"points": True, "tier": 3}, brand="B", stage="s", locale="en")["points"] is None
    known = variables({"points": 10}, brand="B", stage="s", locale="en", values={"points": 99, "tier": "Gold"})
    assert (known["points"], known["tier"]) == (99, "Gold")  # what the caller knows better wins


@given(traits=st.dictionaries(st.sampled_from([*(n for names in TRAITS_OF.values() for n in names), "locale"]),
                              st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                        # a customer named "None" says so, as a shop does
                                        st.text(max_size=300).filter(lambda t: "None" not in t),
                                        st.lists(st.text(max_size=3), max_size=2))),
       template=st.sampled_from(TEMPLATES),
       brand=st.text(min_size=1, max_size=40).filter(lambda b: "None" not in b))  # a shop named "None" says so
@settings(max_examples=300, deadline=None)
def test_any_profile_renders_every_shipped_template(traits, template, brand):
    """Whatever the traits hold (wrong types, control characters, NaN, huge numbers), a send never fails."""
    rendered = render(template, traits=traits, brand=brand, catalogue=shipped())
    assert header_safe(rendered.subject) == rendered.subject and header_safe(rendered.from_name) == rendered.from_name
    assert rendered.text.endswith("\n") and "None" not in rendered.text
    build_email(_row(rendered), settings=SETTINGS).as_bytes(policy=policy.SMTP)  # and it can be sent


def test_a_long_signed_unsubscribe_link_is_never_cut():
    url = "https://shop.example/u/" + "t" * 1500
    assert url in render("welcome", traits={}, brand="B", catalogue=shipped(), unsubscribe_url=url).text


def test_only_the_html_part_is_escaped():
    rendered = render("welcome", traits={"firstName": "<b>Ann</b> & co"}, brand="Shop", catalogue=shipped())
    assert rendered.text.startswith("Hi <b>Ann</b> & co,")
    assert "<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co,</p>" in rendered.html


@pytest.mark.parametrize(("trait", "default", "available", "chosen"), [
    ("vi-VN", "en", {"en", "vi", "th"}, "vi"),
    ("vi_VN", "en", {"en", "vi", "th"}, "vi"),
    ("VI", "en", {"en", "vi", "th"}, "vi"),
    (" th-TH ", "en", {"en", "vi", "th"}, "th"),
    ("vi-VN", "en", {"en", "vi-vn", "vi"}, "vi-vn"),  # the most specific the template has
    ("fr-FR", "vi", {"en", "vi", "th"}, "vi"),  # no French: the shop's default
    ("fr-FR", "th_TH", {"en", "vi", "th"}, "th"),
    ("fr-FR", "de", {"en", "vi", "th"}, "en"),  # nor the default's: English
    (None, "vi", {"en", "vi"}, "vi"),
    ("", "en", {"en", "vi"}, "en"),
    (42, "th", {"en", "th"}, "th"),  # not a language tag: skipped, never an error
    ("../../etc/passwd", "en", {"en", "vi"}, "en"),
    ("vi-VN", "en", {"th"}, None),  # nothing of the chain: the caller decides
])
def test_the_locale_falls_back_from_the_trait_to_the_shops_default_to_english(trait, default, available, chosen):
    assert choose_locale(trait, available=available, default=default) == chosen


def test_the_chain_is_most_specific_first_without_repeats():
    assert locale_chain("zh_Hant_TW", default="vi-VN") == ["zh-hant-tw", "zh-hant", "zh", "vi-vn", "vi", "en"]
    assert locale_chain("en-US", default="en") == ["en-us", "en"]
    assert normalised("VI_vn") == "vi-vn" and normalised("vi vn") is None


def test_render_follows_the_customers_locale_and_the_shops_default():
    catalogue = shipped()
    assert render("welcome", traits={"locale": "vi-VN"}, brand="B", catalogue=catalogue).locale == "vi"
    assert render("welcome", traits={"locale": "th_TH"}, brand="B", catalogue=catalogue).locale == "th"
    assert render("welcome", traits={"locale": "ja-JP"}, brand="B", catalogue=catalogue,
                  default_locale="th").locale == "th"
    assert render("welcome", traits={}, brand="B", catalogue=catalogue).locale == "en"


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ name.__class__.__base__.__subclasses__() }}",
    "{{ brand.format.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ joiner.__init__.__globals__ }}",
    "{% set items = [] %}{{ items.append(1) }}",  # immutable: no method that changes a value
    "{{ 'x' * 100000000 }}",
    "{{ 9 ** 999999 }}",
    "{{ range(10000000) | list | length }}",
    "{{ self.__init__.__globals__ }}",
])
def test_the_sandbox_refuses_pythons_internals_and_runaway_work(attack):
    with pytest.raises(TemplateError) as refused:
        validate(source(text=f"Hi\n{attack}\n"))
    assert (refused.value.part, refused.value.line) == ("text", 2)


def test_a_sandbox_refusal_at_render_time_is_a_template_error_not_a_leak():
    compiled = validate(source(html="<p>{{ brand }}</p>\n"))
    hostile = {**dict.fromkeys(("name", "points", "tier", "last_product", "clv_band", "unsubscribe_url")),
               "brand": "B", "stage": "s", "locale": "en"}
    assert render_parts(compiled, hostile)["html"] == "<p>B</p>"
    with pytest.raises(TemplateError, match="not allowed"):
        render_parts(compile_source(source(subject="{{ brand.__class__ }}")), hostile)


@pytest.mark.parametrize(("parts", "part", "line", "says"), [
    ({"html": "<p>\n{{ name }\n</p>"}, "html", 2, "unexpected '}'"),
    ({"text": "Hi\n\n{% if name %}\n{{ name }}\n"}, "text", 4, "endif"),
    ({"text": "Hi\n{{ nmae }}\n"}, "text", 2, "'nmae' is undefined"),
    ({"subject": "{{ points + 1 }} points"}, "subject", 1, "TypeError"),  # points unknown: None + 1
    ({"preheader": "{{ brand | nosuchfilter }}"}, "preheader", 1, "nosuchfilter"),
    ({"from_name": "{{ name.upper() }}"}, "from_name", 1, "upper"),  # name unknown: None has no upper
])
def test_validation_names_the_part_and_the_line(parts, part, line, says):
    with pytest.raises(TemplateError) as invalid:
        validate(source(**parts))
    assert (invalid.value.part, invalid.value.line) == (part, line)
    assert says in invalid.value.message and str(invalid.value).startswith(f"{part}, line {line}: ")


@pytest.mark.parametrize(("document", "line", "says"), [
    ('subject = "Hi"\ntext = Hi\nhtml = "x"', 2, "line 2"),
    ('subject = "Hi"\ntext = "x"\nhtml = """unclosed', None, "end of document"),
    ('subject = "Hi"\ntext = "x"\n', None, "missing key(s): html"),
    ('subject = "Hi"\ntext = "x"\nhtml = "y"\nbody = "z"\n', None, "unknown key(s): body"),
])
def test_a_template_file_that_is_no_template_is_named(document, line, says):
    with pytest.raises(TemplateError) as invalid:
        parse_source(document)
    assert (invalid.value.part, invalid.value.line) == ("document", line) and says in str(invalid.value)


def test_a_part_that_is_not_text_is_named():
    with pytest.raises(TemplateError, match="^html: must be a string"):
        parse_source('subject = "Hi"\ntext = "x"\nhtml = 3\n')


def test_a_locale_that_fails_for_this_customer_falls_back_instead_of_failing_the_send():
    """Validated, yet `100 // (points - 7)` divides by zero for 7 points: the next locale is sent."""
    broken = validate(source(text="{% if points %}{{ 100 // (points - 7) }}{% endif %}\n"))
    catalogue = {"welcome": {"vi": broken, "en": validate(source(text="Hi {{ points }}\n"))}}
    rendered = render("welcome", traits={"locale": "vi", "points": 7}, brand="B", catalogue=catalogue)
    assert (rendered.locale, rendered.text) == ("en", "Hi 7\n")
    assert render("welcome", traits={"locale": "vi", "points": 8}, brand="B", catalogue=catalogue).locale == "vi"


def test_a_rendered_message_is_stored_and_read_back_whole():
    rendered = render("thank_you_feedback", traits={**FULL, "locale": "th"}, brand="ร้านบ้านสวน",
                      catalogue=shipped())
    assert Rendered.from_columns(template=rendered.template, subject=rendered.subject,
                                 **rendered.columns()) == rendered
    legacy = Rendered.from_columns(body="Hi Ann,\n", template="welcome", subject="Welcome")
    assert (legacy.text, legacy.html, legacy.subject, legacy.from_name) == ("Hi Ann,\n", "", "Welcome", "")


def _row(rendered: Rendered) -> SimpleNamespace:
    return SimpleNamespace(id="m1", recipient="minh@example.com", subject=rendered.subject, template=rendered.template,
                           customer_id="c1", unsubscribe_url=None, **rendered.columns())


@pytest.mark.parametrize(("locale", "brand"), [("vi", "Cửa hàng Mộc"), ("th", "ร้านบ้านสวน"), ("en", "Shop")])
def test_the_email_is_text_and_html_alternatives_with_encoded_headers(locale, brand):
    rendered = render("retention_offer", traits={**FULL, "locale": locale}, brand=brand, catalogue=shipped())
    email = build_email(_row(rendered), settings=SETTINGS)
    wire = email.as_bytes(policy=policy.SMTP)
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # encoded words (RFC 2047), not raw UTF-8: any server relays them
    assert (b"=?utf-8?" in head) is (locale != "en")
    back = message_from_bytes(wire, policy=policy.default)
    assert back.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in back.iter_parts()] == ["text/plain", "text/html"]
    assert back["Subject"] == rendered.subject
    assert (back["From"].addresses[0].display_name, back["From"].addresses[0].addr_spec) == (
        brand, "hello@shop.example")
    if locale != "en":  # base64: the bytes come back exactly
        assert back.get_body(("plain",)).get_content() == rendered.text
        assert back.get_body(("html",)).get_content() == rendered.html


@pytest.mark.parametrize("subject", [
    "1.250 điểm của bạn sẽ hết hạn vào ngày 19/05/2026 - dùng ngay kẻo lỡ!",
    "คะแนนสะสม 1,250 คะแนนของคุณจะหมดอายุวันที่ 19 พฤษภาคม 2569 รีบใช้ก่อนนะคะ",
    "Chúc mừng Lan đã lên hạng Silver! " * 6 + "xong", "A plain English subject " * 8 + "end"])
def test_a_long_subject_reads_back_with_every_space(subject):
    """Python 3.11's folder loses the space at a fold between two encoded words (CPython gh-144156)."""
    rendered = Rendered(template="t", locale="vi", subject=subject, text="x\n", html="<p>x</p>")
    wire = build_email(_row(rendered), settings=SETTINGS).as_bytes(policy=policy.SMTP)
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert str(message_from_bytes(wire, policy=policy.default)["Subject"]) == subject
    utf8 = build_email(_row(rendered), settings=SETTINGS).as_bytes(policy=policy.SMTPUTF8)  # raw UTF-8 header
    assert str(message_from_string(utf8.decode(), policy=policy.default)["Subject"]) == subject
    assert subject.isascii() or b"=?utf-8?" not in utf8.split(b"\r\n\r\n", 1)[0]


@given(subject=st.text(st.characters(categories=["L", "M", "N", "P", "Zs"]), min_size=1, max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_subject_reads_back_whole(subject):
    subject = header_safe(subject)
    rendered = Rendered(template="t", locale="th", subject=subject, text="x\n", html="<p>x</p>")
    wire = build_email(_row(rendered), settings=SETTINGS).as_bytes(policy=policy.SMTP)
    assert str(message_from_bytes(wire, policy=policy.default)["Subject"]) == subject


def test_an_older_plain_text_row_is_sent_as_it_was():
    row = SimpleNamespace(id="m1", recipient="a@example.com", subject="Welcome", template="welcome",
                          customer_id="c1", body="Hi Ann,\n", html=None, locale=None, preheader=None,
                          from_name=None, unsubscribe_url=None)
    email = build_email(row, settings=MessagingSettings(environment="development"))
    assert email.get_content_type() == "text/plain" and email["From"] == "Lifecycle <hello@lifecycle.invalid>"


@pytest.mark.parametrize("default", ["en", "vi", "vi_VN", "th-TH"])
def test_the_shops_default_locale_is_a_setting(default):
    assert MessagingSettings(environment="development", default_locale=default).default_locale == default


@pytest.mark.parametrize("default", ["", "vietnamese!", "../en"])
def test_a_default_locale_that_is_no_language_tag_is_refused_at_start(default):
    with pytest.raises(ValidationError):
        MessagingSettings(environment="development", default_locale=default)


def test_a_broken_template_file_is_named_with_its_part_and_line_when_loaded(tmp_path):
    (tmp_path / "welcome").mkdir()
    (tmp_path / "welcome" / "en.toml").write_text('subject = "Hi"\ntext = "Hi"\nhtml = "<p>Hi</p>"\n')
    broken = 'subject = "Chào"\ntext = "Chào"\nhtml = """\n<p>\n{{ name }\n"""\n'
    (tmp_path / "welcome" / "vi-VN.toml").write_text(broken)
    with pytest.raises(ValueError, match=r"^templates/welcome/vi-VN\.toml: html, line 2: unexpected '}'"):
        load(tmp_path)
    (tmp_path / "welcome" / "vi-VN.toml").write_text('subject = "Chào"\ntext = "Chào"\nhtml = "<p>Chào</p>"\n')
    assert sorted(load(tmp_path)["welcome"]) == ["en", "vi-vn"]
