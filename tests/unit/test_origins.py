"""Browser origins as a source lists them: exact scheme://host[:port], normalised as browsers send
them, anything else refused naming why. Pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_ingest.domain.origins import InvalidOrigin, normalise_origin

VALID_ORIGINS = [
    ("https://shop.example.com", "https://shop.example.com"),
    ("HTTPS://Shop.Example.COM", "https://shop.example.com"),
    ("https://shop.example.com:443", "https://shop.example.com"),
    ("http://shop.example.com:80", "http://shop.example.com"),
    ("http://shop.example.com:443", "http://shop.example.com:443"),
    ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("https://[2001:DB8:0:0:0:0:0:1]", "https://[2001:db8::1]"),
    ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
]
INVALID_ORIGINS = [
    ("https://shop.example.com/", "trailing slash"),
    ("https://shop.example.com/path", "no path"),
    ("https://shop.example.com?x=1", "no path, query"),
    ("https://*.example.com", "wildcard"),
    ("*", "wildcard"),
    ("ftp://shop.example.com", "http or https"),
    ("shop.example.com", "scheme://host"),
    ("https://", "host"),
    ("https://user@shop.example.com", "host"),
    ("https://shop.example.com:0", "port"),
    ("https://shop.example.com:65536", "port"),
    ("https://shop.example.com:", "scheme://host"),
    ("https://shop..example.com", "host"),
    ("https://shop.example.com.", "host"),
    ("https://bücher.example", "punycode"),
    ("https://300.1.1.1", "IPv4"),
    ("https://[::g]", "IPv6"),
    ("https://[fe80::1%25eth0]", "IPv6"),
    ("https://[fe80::1%eth0]", "IPv6"),
    ("https://[::1", "scheme://host"),
    (" https://shop.example.com", "scheme://host"),
    ("null", "scheme://host"),
]


@pytest.mark.parametrize(("origin", "normalised"), VALID_ORIGINS)
def test_origins_are_normalised_as_browsers_send_them(origin, normalised):
    assert normalise_origin(origin) == normalised


@pytest.mark.parametrize(("origin", "problem"), INVALID_ORIGINS)
def test_origins_that_are_not_exact_scheme_host_port_are_refused_naming_why(origin, problem):
    with pytest.raises(InvalidOrigin, match=problem):
        normalise_origin(origin)


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True).filter(lambda s: not s.isdigit())


@given(scheme=st.sampled_from(["http", "https"]), labels=st.lists(LABEL, min_size=1, max_size=4),
       port=st.none() | st.integers(1, 65535), upper=st.lists(st.booleans(), min_size=80, max_size=80))
def test_normalising_an_origin_is_idempotent_and_ignores_case_and_default_ports(scheme, labels, port, upper):
    canonical = f"{scheme}://{'.'.join(labels)}" + (f":{port}" if port else "")
    normalised = normalise_origin(canonical)
    assert normalise_origin(normalised) == normalised
    shouted = "".join(c.upper() if flip else c for c, flip in zip(canonical, upper * 10, strict=False))
    assert normalise_origin(shouted) == normalised
    default = {"http": 80, "https": 443}[scheme]
    assert (normalised.endswith(f":{port}")) == (port is not None and port != default)
    if port is None:
        assert normalise_origin(f"{canonical}:{default}") == normalised


@given(st.text(max_size=60) | st.builds(lambda s, rest: f"{s}://{rest}", st.sampled_from(["http", "https", "HTTP"]),
                                        st.text(max_size=40)))
def test_any_text_is_an_origin_or_a_named_refusal_and_an_origin_normalises_to_itself(candidate):
    try:
        normalised = normalise_origin(candidate)
    except InvalidOrigin as error:
        assert str(error)
    else:
        assert normalise_origin(normalised) == normalised and normalised.split("://")[0] in ("http", "https")
