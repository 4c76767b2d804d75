"""A message template's source, its validation and its rendering in Jinja2's sandbox. Pure.

A template is five parts (`PARTS`): the subject, the preview line (preheader), the sender's
display name, and the text and HTML bodies. Each is a Jinja2 template rendered in an immutable
sandbox: no attribute of Python's internals (`__class__`, `__globals__`, ...), no method that
changes a value, none of Jinja's helper globals but `range` (itself bounded), no huge string
repetition or power. Only the HTML part is autoescaped. Two filters of our own write for the template's
locale: `number` (digit grouping) and `date` (a day as the locale writes it).

Every variable (`VARIABLES`) is always defined - None when the profile does not know it - and a
None renders as nothing, so a template says what to write instead (`{% if name %}`); any other
name is an error (StrictUndefined). `validate` compiles every part and renders it twice, with every
variable known and with every optional one missing; its `TemplateError` names the part and the
line, for a 400 when a template is saved. A template that passed it renders at send time.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

PARTS = ("subject", "preheader", "from_name", "text", "html")
REQUIRED = ("subject", "text", "html")
# What a template may use. Optional ones are None when unknown: `brand`, `stage` and `locale` never are.
VARIABLES = ("name", "stage", "points", "tier", "last_product", "clv_band", "brand", "unsubscribe_url", "locale",
             "expires_on", "reward", "cost", "shop_url")
MAX_REPEAT = 10_000  # 'x' * n, [..] * n
MAX_EXPONENT = 64


@dataclass(frozen=True)
class TemplateSource:
    """One template in one locale, as written. An empty `from_name` is the brand; `preheader` may be empty."""

    subject: str
    text: str
    html: str
    preheader: str = ""
    from_name: str = ""


class TemplateError(ValueError):
    """What is wrong with a template, and where: the part (`subject`, `html`, ... or `document`) and line."""

    def __init__(self, part: str, line: int | None, message: str) -> None:
        self.part, self.line, self.message = part, line, message
        super().__init__(f"{part}, line {line}: {message}" if line else f"{part}: {message}")


def _number(value: object, locale: str) -> str:
    """1250 -> `1,250` (en, th), `1.250` (vi)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "" if value is None else str(value)
    grouped = f"{value:,.0f}"
    return grouped.replace(",", ".") if locale.split("-")[0] == "vi" else grouped


@pass_context
def _number_filter(context: Context, value: object) -> str:
    return _number(value, str(context.get("locale") or "en"))


_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")
_TH_MONTHS = ("มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน", "กรกฎาคม", "สิงหาคม", "กันยายน",
              "ตุลาคม", "พฤศจิกายน", "ธันวาคม")
BUDDHIST_ERA = 543  # years the Thai calendar (พ.ศ.) counts ahead of the Gregorian one


def _date(value: object, locale: str) -> str:
    """A day as the locale writes it in a letter: `31 December 2026` (en), `31/12/2026` (vi), `31 ธันวาคม 2569`
    (th: the Buddhist era, as Thai consumer mail and receipts write the year)."""
    if not isinstance(value, date):
        return "" if value is None else str(value)
    language = locale.split("-")[0]
    if language == "vi":
        return f"{value.day:02d}/{value.month:02d}/{value.year}"
    if language == "th":
        return f"{value.day} {_TH_MONTHS[value.month - 1]} {value.year + BUDDHIST_ERA}"
    return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"


@pass_context
def _date_filter(context: Context, value: object) -> str:
    return _date(value, str(context.get("locale") or "en"))


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        sizes = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
        if operator == "*" and (isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple)):
            if any(abs(n) > MAX_REPEAT for n in sizes):
                raise SecurityError(f"repeating a sequence more than {MAX_REPEAT} times")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


def _environment(*, autoescape: bool) -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=autoescape, lstrip_blocks=True,
                   finalize=lambda value: "" if value is None else value)
    env.globals = {"range": env.globals["range"]}  # the sandbox's bounded range; no cycler, joiner, lipsum...
    env.filters["number"] = _number_filter
    env.filters["date"] = _date_filter
    return env


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)
_TEMPLATE_FILE = "<template>"  # the file name Jinja gives a template compiled from a string


@dataclass(frozen=True)
class Compiled:
    """A template whose every part compiled: ready to render."""

    source: TemplateSource
    parts: Mapping[str, Template]


def _line_of(error: BaseException) -> int | None:
    """The template line a render error was raised on: Jinja puts the template's lines in the traceback."""
    line, tb = None, error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _described(error: BaseException) -> str:
    if isinstance(error, SecurityError):
        return f"not allowed: {error}"
    return f"{type(error).__name__}: {error}" if not isinstance(error, TemplateSyntaxError) else str(error.message)


def compile_source(source: TemplateSource) -> Compiled:
    """Every part compiled, or a TemplateError naming the first part and line that do not."""
    compiled = {}
    for part in PARTS:
        env = _HTML if part == "html" else _TEXT
        try:
            compiled[part] = env.from_string(getattr(source, part))
        except TemplateSyntaxError as error:
            raise TemplateError(part, error.lineno, _described(error)) from None
        except RecursionError:  # Jinja's parser recurses once per nesting level: a few hundred brackets are enough
            raise TemplateError(part, None, "expressions or blocks nested too deeply") from None
    return Compiled(source=source, parts=compiled)


def render_parts(compiled: Compiled, variables: Mapping[str, object]) -> dict[str, str]:
    """Every part rendered with `variables` (all of `VARIABLES`), or a TemplateError naming part and line."""
    context = {name: variables.get(name) for name in VARIABLES}
    rendered = {}
    for part, template in compiled.parts.items():
        try:
            rendered[part] = template.render(context)
        except Exception as error:  # noqa: BLE001 - whatever a template does wrong, it is the template's error
            raise TemplateError(part, _line_of(error), _described(error)) from None
    return rendered


SAMPLE: Mapping[str, object] = {
    "name": "Lan", "stage": "retention", "points": 1250, "tier": "Gold", "last_product": "Áo khoác gió",
    "clv_band": "high", "brand": "Sample Shop", "unsubscribe_url": "https://shop.example/unsubscribe?t=abc&x=1",
    "locale": "en", "expires_on": date(2026, 12, 31), "reward": "free_shipping", "cost": 500,
    "shop_url": "https://shop.example/",
}
SAMPLE_UNKNOWN: Mapping[str, object] = {
    name: SAMPLE[name] if name in ("stage", "brand", "locale") else None for name in VARIABLES}


def validate(source: TemplateSource) -> Compiled:
    """The compiled template if every part compiles and renders with every variable known and with every
    optional one missing; else a TemplateError naming the part and the line."""
    compiled = compile_source(source)
    for sample in (SAMPLE, SAMPLE_UNKNOWN):
        render_parts(compiled, sample)
    return compiled


_TOML_LINE = re.compile(r"line (\d+)")


def parse_source(document: str) -> TemplateSource:
    """A template file (TOML: `subject`, `text`, `html`, optional `preheader` and `from_name`, all strings)."""
    try:
        table = tomllib.loads(document)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_LINE.search(str(error))
        raise TemplateError("document", int(found.group(1)) if found else None, str(error)) from None
    known = {f.name for f in fields(TemplateSource)}
    if unknown := sorted(set(table) - known):
        raise TemplateError("document", None, f"unknown key(s): {', '.join(unknown)}")
    if missing := [part for part in REQUIRED if part not in table]:
        raise TemplateError("document", None, f"missing key(s): {', '.join(missing)}")
    if wrong := sorted(key for key, value in table.items() if not isinstance(value, str)):
        raise TemplateError(wrong[0], None, "must be a string")
    return TemplateSource(**table)

