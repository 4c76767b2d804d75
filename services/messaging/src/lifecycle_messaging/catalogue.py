"""The shipped message templates: `templates/<template>/<locale>.toml`, package data, read once.

Every file is parsed and validated when loaded (`domain.sandbox.validate`): a broken shipped
template stops the service at start, naming the file, the part and the line - never a send.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from lifecycle_messaging.domain.locales import normalised
from lifecycle_messaging.domain.sandbox import Compiled, TemplateError, parse_source, validate
from lifecycle_messaging.domain.templates import Catalogue

SHIPPED = files("lifecycle_messaging") / "templates"


def load(directory: Traversable = SHIPPED) -> Catalogue:
    """Every `<template>/<locale>.toml` under `directory`, validated."""
    catalogue: dict[str, dict[str, Compiled]] = {}
    for folder in sorted(directory.iterdir(), key=lambda entry: entry.name):
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        for file in sorted(folder.iterdir(), key=lambda entry: entry.name):
            locale = normalised(file.name.removesuffix(".toml"))
            if not file.name.endswith(".toml") or locale is None:
                continue
            try:
                catalogue.setdefault(folder.name, {})[locale] = validate(parse_source(file.read_text("utf-8")))
            except TemplateError as error:
                raise ValueError(f"templates/{folder.name}/{file.name}: {error}") from None
    return catalogue


@cache
def shipped() -> Catalogue:
    return load()
