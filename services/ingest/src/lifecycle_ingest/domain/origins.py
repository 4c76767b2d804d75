"""Browser origins a source allows: exact `scheme://host[:port]`, written as browsers send them.

A browser sends `Origin` already serialised (lowercase scheme and host, IDN hosts in punycode,
IPv6 compressed in brackets, default port omitted), so an allowlist kept in that same form is
checked by plain string equality: no parsing on the request path, no wildcard to get wrong.
"""

from __future__ import annotations

import ipaddress
import re

MAX_ORIGINS = 100
DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[^\]]*\]|[^:/?#\[\]]*)(?::(?P<port>[0-9]+))?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class InvalidOrigin(ValueError):
    """The message names the problem (the value itself is the caller's to quote)."""


def normalise_origin(text: str) -> str:
    """`text` as a browser would send it in `Origin`, or InvalidOrigin saying what is wrong."""
    if "*" in text:
        raise InvalidOrigin("wildcards are not allowed: list each origin exactly")
    match = _ORIGIN.fullmatch(text)
    if match is None:
        if "://" in text and re.search(r"://[^/]*[/?#]", text):
            raise InvalidOrigin("an origin has no path, query or trailing slash: scheme://host[:port]")
        raise InvalidOrigin("expected scheme://host[:port], e.g. https://shop.example.com")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidOrigin("the scheme must be http or https")
    host = _host(match["host"])
    if match["port"] is None:
        return f"{scheme}://{host}"
    port = int(match["port"]) if len(match["port"]) <= 5 else 0
    if not 0 < port <= 65535:
        raise InvalidOrigin("the port must be 1 to 65535")
    return f"{scheme}://{host}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


def normalise_origins(texts: list[str]) -> list[str]:
    """Each origin normalised, duplicates dropped, order kept; InvalidOrigin names the index at fault."""
    if len(texts) > MAX_ORIGINS:
        raise InvalidOrigin(f"at most {MAX_ORIGINS} origins per source")
    normalised: dict[str, None] = {}
    for index, text in enumerate(texts):
        try:
            normalised[normalise_origin(text)] = None
        except InvalidOrigin as error:
            raise InvalidOrigin(f"allowed_origins[{index}] {text[:300]!r}: {error}") from None
    return list(normalised)


def _host(host: str) -> str:
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidOrigin("not a valid IPv6 address in brackets") from None
        if address.scope_id is not None:
            raise InvalidOrigin("not a valid IPv6 address in brackets: browsers send no zone (%...)")
        return f"[{address.compressed}]"
    if not host.isascii():
        raise InvalidOrigin("a host must be ASCII: write an international name in its punycode (xn--) form")
    host = host.lower()
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidOrigin("not a valid host name")
    if labels[-1].isdigit():  # browsers read a name ending in a number as an IPv4 address
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise InvalidOrigin("not a valid IPv4 address") from None
    return host
