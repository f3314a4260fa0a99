"""The catalogue of message templates (消息模板) that strategies name: the shipped defaults in
templates/catalog.yaml, every template in Chinese and English. A stored version (see
recoup.channels.service) replaces the default of its name and language; these functions read
the shipped file only, for the strategy linter and the compliance guard's planning."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from recoup.channels import rules
from recoup.compliance.wording import mentions_suit

LANGUAGES = rules.LANGUAGES


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
    """The variables a template text reads (a text that does not parse: those written
    `{{ name }}`)."""
    try:
        return rules.template_variables(body)
    except jinja2.TemplateSyntaxError:
        return set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", body))


def templates_mentioning_suit() -> frozenset[tuple[str, str]]:
    """The (name, language) of the shipped templates that speak of suing or courts: on a
    time-barred debt the guard refuses them (rule us.time_barred_suit). Read once per process;
    compliance.service adds the versions stored in the database."""
    return _mentioning_suit()


@lru_cache(maxsize=1)
def _mentioning_suit() -> frozenset[tuple[str, str]]:
    return frozenset(
        (name, lang)
        for name, t in catalog().items()
        for lang in LANGUAGES
        if mentions_suit(f"{t[lang].get('subject', '')}\n{t[lang]['body']}")
    )


def templates_with_opt_out() -> frozenset[str]:
    """Templates whose every language carries the opt-out instruction (parsed once: the
    guard asks for every partition of the daily cycle)."""
    return _with_opt_out()


@lru_cache(maxsize=1)
def _with_opt_out() -> frozenset[str]:
    return frozenset(
        name
        for name, t in catalog().items()
        if all("opt_out" in variables(t[lang]["body"]) for lang in LANGUAGES)
    )
