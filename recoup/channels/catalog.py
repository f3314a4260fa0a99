"""The catalogue of message templates (消息模板) that strategies name: data in
templates/catalog.yaml, every template in Chinese and English."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

LANGUAGES = ("zh", "en")


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, Any]]:
    source = (
        resources.files("recoup.channels").joinpath("templates/catalog.yaml").read_text("utf-8")
    )
    data: dict[str, dict[str, Any]] = yaml.safe_load(source)
    return data


def known_templates() -> set[str]:
    return set(catalog())


def variables(body: str) -> set[str]:
    return set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", body))


def templates_with_opt_out() -> set[str]:
    """Templates whose every language carries the opt-out instruction."""
    return {
        name
        for name, t in catalog().items()
        if all("opt_out" in variables(t[lang]["body"]) for lang in LANGUAGES)
    }
