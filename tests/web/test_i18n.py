"""Both languages are complete, the language is chosen as documented, and amounts are exact."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from recoup.cycle.service import AMOUNT_KEYS, COUNT_KEYS
from recoup.ledger import rules
from recoup.web import i18n
from recoup.web.pages import LABELS

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _ids(catalog) -> dict[str, object]:
    return {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in catalog if m.id}


def test_every_label_in_templates_and_code_has_a_chinese_translation():
    used = _ids(i18n.extract_messages())
    zh = _ids(i18n.read_catalog("zh-CN"))
    assert len(used) > 100  # the extraction found the templates at all
    missing = sorted(msgid for msgid in used if msgid not in zh)
    assert not missing, f"not in the zh_CN catalog (run python -m recoup.web.i18n): {missing}"
    untranslated = sorted(
        msgid
        for msgid, message in zh.items()
        if msgid in used
        and (
            message.fuzzy
            or not all(message.string if isinstance(message.string, tuple) else [message.string])
        )
    )
    assert not untranslated, f"empty or fuzzy zh_CN translations: {untranslated}"


def test_english_catalog_lists_every_label_too():
    used = _ids(i18n.extract_messages())
    en = _ids(i18n.read_catalog("en"))
    assert not sorted(set(used) - set(en))


def test_chinese_translations_keep_their_placeholders():
    for msgid, message in _ids(i18n.read_catalog("zh-CN")).items():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for translated in strings:
            assert set(PLACEHOLDER.findall(translated)) == set(PLACEHOLDER.findall(msgid)), msgid


def test_chinese_catalog_uses_the_glossary_words():
    zh = i18n.translations("zh-CN")
    assert zh.gettext("Days past due") == "逾期天数"
    assert zh.gettext("Bucket") == "账龄段"
    assert zh.gettext("Collection stage") == "催收阶段"
    assert zh.gettext("Penalty interest") == "罚息"
    assert zh.gettext("Late fees") == "滞纳金"
    assert zh.gettext("Principal") == "本金"
    assert zh.gettext("Interest") == "利息"
    assert zh.gettext("Repayment schedule") == "还款计划"
    assert zh.gettext("Debtor") == "债务人"
    assert zh.gettext("Contact points") == "联系方式"


@pytest.mark.parametrize(
    ("kind", "codes"),
    [
        ("status", rules.STATUSES),
        ("flag", rules.STOP_FLAGS),
        ("owner", rules.CONTACT_OWNERS),
        ("contact_kind", rules.CONTACT_KINDS),
        ("component", (*rules.COMPONENTS, "credit")),
        ("method", (*rules.METHODS, "given", "invoice")),
        ("cycle_count", (*COUNT_KEYS, *AMOUNT_KEYS, "accounts")),
    ],
)
def test_every_stored_code_has_a_label(kind, codes):
    import recoup.ledger.views  # noqa: F401  (registers the ledger's labels)

    assert set(codes) <= set(LABELS[kind])


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "zh-CN"),
        ("en", None, None, "en"),
        ("zh-CN", "en", "en-US", "zh-CN"),
        (None, "en", "zh-CN,zh;q=0.9", "en"),
        (None, None, "en-US,en;q=0.9", "en"),
        (None, None, "fr-FR, en;q=0.5, zh;q=0.8", "zh-CN"),
        (None, None, "fr-FR", "zh-CN"),
        ("xx", "yy", "de", "zh-CN"),
        ("zh_Hans_CN", None, None, "zh-CN"),
        (None, None, "en;q=0", "zh-CN"),
    ],
)
def test_language_choice_order(query, cookie, accept, expected):
    assert i18n.choose_language(query, cookie, accept, "zh-CN") == expected


def test_money_is_formatted_per_locale_from_minor_units():
    zh = i18n.Formats("zh-CN", "Asia/Shanghai")
    en = i18n.Formats("en", "Asia/Shanghai")
    assert zh.money(123456, "CNY") == "¥1,234.56"
    assert en.money(123456, "CNY") == "CN¥1,234.56"
    assert en.money(-5, "USD") == "-$0.05"
    assert en.money(1234, "JPY") == "¥1,234"
    # Far beyond float's 15-16 significant digits, still exact to the fen.
    assert en.money(10**17 + 1, "CNY") == "CN¥1,000,000,000,000,000.01"


def test_rates_are_shown_as_percent_a_year():
    en = i18n.Formats("en", "Asia/Shanghai")
    assert en.rate(182_500) == "18.25%"
    assert en.rate(120_000) == "12.00%"
    assert en.rate(123_456) == "12.3456%"
    assert en.number(Decimal("1234567")) == "1,234,567"
