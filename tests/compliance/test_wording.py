"""The wording check: every case of wording_cases.yaml, normalisation, the phrase lists, and
agreement of the vectorised form with the scalar form."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recoup.compliance import wording
from recoup.compliance.wording import (
    CATEGORIES,
    LANGUAGES,
    Finding,
    PhraseListError,
    check_text,
    check_texts,
    first_finding,
    load_phrases,
    normalise,
    normalise_expr,
)

CASES: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "wording_cases.yaml").read_text(encoding="utf-8")
)
CATEGORY_NAMES = [c.name for c in CATEGORIES]


def caught_cases() -> Iterator[Any]:
    for lang in LANGUAGES:
        for n, case in enumerate(CASES[lang]["caught"], start=1):
            yield pytest.param(
                lang, case["text"], case["category"], id=f"{lang}-caught-{n:03d}-{case['category']}"
            )


def pass_cases() -> Iterator[Any]:
    for lang in LANGUAGES:
        for n, text in enumerate(CASES[lang]["pass"], start=1):
            yield pytest.param(lang, text, id=f"{lang}-pass-{n:03d}")


def all_texts() -> list[str]:
    return [c["text"] for lang in LANGUAGES for c in CASES[lang]["caught"]] + [
        t for lang in LANGUAGES for t in CASES[lang]["pass"]
    ]


def as_row(finding: Finding | None) -> dict[str, str | None]:
    if finding is None:
        return {"rule_id": None, "phrase": None, "reason_en": None, "reason_zh": None}
    return {
        "rule_id": finding.rule_id,
        "phrase": finding.phrase,
        "reason_en": finding.reason_en,
        "reason_zh": finding.reason_zh,
    }


def assert_vectorised_agrees(texts: list[str]) -> None:
    frame = check_texts(pl.Series(texts, dtype=pl.String))
    assert frame.height == len(texts)
    for text, row in zip(texts, frame.iter_rows(named=True), strict=True):
        assert row == as_row(first_finding(text)), text


# --------------------------------------------------------------------------- the cases


def test_enough_cases_per_language() -> None:
    for lang in LANGUAGES:
        assert len(CASES[lang]["caught"]) >= 60, lang
        assert len(CASES[lang]["pass"]) >= 60, lang
        assert {c["category"] for c in CASES[lang]["caught"]} == set(CATEGORY_NAMES), lang


@pytest.mark.parametrize(("lang", "text", "category"), list(caught_cases()))
def test_caught(lang: str, text: str, category: str) -> None:
    finding = first_finding(text)
    assert finding is not None, f"not caught: {text}"
    assert finding.category == category, (finding.phrase, finding.matched)
    assert finding.rule_id == f"wording.{category}"
    # The language's own list is enough to catch it.
    own = first_finding(text, languages=(lang,))
    assert own is not None and own.category == category


@pytest.mark.parametrize(("lang", "text"), list(pass_cases()))
def test_passes(lang: str, text: str) -> None:
    assert check_text(text) == [], text


def test_vectorised_agrees_on_every_case() -> None:
    assert_vectorised_agrees(all_texts())


def test_the_brief_examples() -> None:
    for text in ("我们要让你坐牢", "马上派人去你单位", "通知你所有联系人"):
        assert first_finding(text) is not None, text
    for text in (
        "您有权向人民法院提起诉讼",
        "you may dispute this debt",
        "may take lawful action",
        "依法维护合法权益",
        "可能影响您的个人信用记录（依法报送征信）",
    ):
        assert first_finding(text) is None, text


# --------------------------------------------------------------------------- findings


def test_finding_reports_the_entry_and_the_normalised_match() -> None:
    finding = first_finding("再不还就等着坐 - 牢吧")
    assert finding == Finding(
        rule_id="wording.threat",
        category="threat",
        phrase="坐牢",
        matched="坐牢",
        reason_en=CATEGORIES[CATEGORY_NAMES.index("threat")].reason_en,
        reason_zh=CATEGORIES[CATEGORY_NAMES.index("threat")].reason_zh,
    )
    regex_finding = first_finding("We   KNOW where YOUR kids go to school")
    assert regex_finding is not None
    assert regex_finding.phrase.startswith("we know where (")  # the regex source, as written
    assert regex_finding.matched == "we know where your kids go to school"


def test_every_category_has_a_bilingual_reason() -> None:
    for category in CATEGORIES:
        assert category.rule_id == f"wording.{category.name}"
        assert category.reason_en.isascii() and category.reason_en.endswith(".")
        assert not category.reason_zh.isascii() and category.reason_zh.endswith("。")


def test_all_findings_by_precedence_then_list_order() -> None:
    text = "我是公安局的，已经对你立案，再不还就让你坐牢，通知你单位，你个废物。"
    findings = check_text(text)
    categories = [f.category for f in findings]
    assert categories[0] == "impersonation"
    assert {"impersonation", "fake_legal", "threat", "third_party_shaming", "insult"} <= set(
        categories
    )
    ranks = [CATEGORY_NAMES.index(c) for c in categories]
    assert ranks == sorted(ranks)
    assert first_finding(text) == findings[0]
    assert len(set(findings)) == len(findings)


def test_an_allow_entry_excuses_only_its_own_words() -> None:
    assert first_finding("我们不会通知您的家人。") is None
    mixed = first_finding("我们不会通知您的家人，但会通知你单位。")
    assert mixed is not None and mixed.matched == "通知你单位"
    assert first_finding("We will not contact your employer.") is None
    mixed = first_finding("We will not contact your employer, but we will call your wife.")
    assert mixed is not None and mixed.matched == "call your wife"


def test_an_allow_entry_with_a_gap_does_not_swallow_a_threat() -> None:
    # Negations in allow entries take a closed list of words, not "any words".
    assert first_finding("If you do not pay criminal charges will be filed.") is not None
    assert first_finding("If you don't pay we will call your boss.") is not None
    assert first_finding("不要再拖了赶紧借钱还上") is not None


def test_english_phrases_need_word_boundaries() -> None:
    assert first_finding("Our skilled team will call you back.") is None
    assert first_finding("Whether you pay online or elsewhere, keep the receipt.") is None
    assert first_finding("We'll kill you.") is not None


def test_languages_select_the_lists() -> None:
    assert first_finding("We know where you live.", languages=("zh",)) is None
    assert first_finding("让你坐牢", languages=("en",)) is None
    assert first_finding("让你坐牢", languages=()) is None
    with pytest.raises(ValueError, match="unknown language"):
        first_finding("x", languages=("fr",))


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [(c["input"], c["expected"]) for c in CASES["normalisation"]],
    ids=[f"norm-{n:02d}" for n in range(1, len(CASES["normalisation"]) + 1)],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected
    vectorised = pl.select(normalise_expr(pl.lit(text, dtype=pl.String))).item()
    assert vectorised == expected


def test_characters_unknown_to_python_normalise_alike() -> None:
    # Assigned after this Python's Unicode version (U+1CCD6: Unicode 16, NFKC "a"), unassigned,
    # private use, noncharacter: Polars' newer tables must not make the two forms differ.
    texts = ["\U0001ccd6", "\U0001e030", "\u0378", "\U00050000", "\U000f0000", "\U0010ffff"]
    vectorised = pl.Series(texts, dtype=pl.String).to_frame("t").select(normalise_expr(pl.col("t")))
    assert vectorised.to_series().to_list() == [normalise(t) for t in texts]
    assert first_finding("坐\U0001ccd6牢") == first_finding("坐牢")


def test_obfuscation_does_not_pass() -> None:
    for text in ("坐 牢", "坐-牢", "坐*牢", "坐·牢", "坐\u200b牢", "坐\u3000牢", "坐🙂牢"):
        finding = first_finding(f"不还就让你{text}")
        assert finding is not None and finding.category == "threat", text
    for text in ("ＡＲＲＥＳＴ ＷＡＲＲＡＮＴ", "Arrest  Warrant", "aRrEsT\twArRaNt"):
        finding = first_finding(text)
        assert finding is not None and finding.category == "fake_legal", text


# --------------------------------------------------------------------------- phrase lists


def test_every_literal_deny_entry_catches_itself() -> None:
    for lang in LANGUAGES:
        for phrase in load_phrases(lang):
            if phrase.kind == "deny" and not phrase.is_regex:
                found = {f.category for f in check_text(phrase.source, languages=(lang,))}
                assert phrase.category in found, (lang, phrase.source)


def test_every_pattern_compiles_in_polars() -> None:
    for lang in LANGUAGES:
        for phrase in load_phrases(lang):
            column = pl.Series([""], dtype=pl.String).str.contains(phrase.pattern)
            assert column.to_list() == [False], (lang, phrase.source)


def test_loading_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read = wording._read_phrase_file

    def counting_read(language: str) -> Any:
        reads.append(language)
        return read(language)

    monkeypatch.setattr(wording, "_read_phrase_file", counting_read)
    load_phrases.cache_clear()
    wording._rules.cache_clear()
    try:
        for _ in range(3):
            first_finding("让你坐牢")
            check_text("We know where you live.")
        check_texts(pl.Series(["让你坐牢", "hello"]))
        first_finding("hello", languages=("en",))
        assert sorted(reads) == sorted(LANGUAGES)
        assert load_phrases("zh") is load_phrases("zh")
    finally:
        load_phrases.cache_clear()
        wording._rules.cache_clear()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping"),
        ({"rudeness": {"deny": ["x"]}}, "unknown category"),
        ({"insult": {"block": ["x"]}}, "expected `deny` and `allow`"),
        ({"insult": {"deny": "x"}}, "expected a list"),
        ({"insult": {"deny": [{"regex": "x"}]}}, "an entry is a phrase"),
        ({"insult": {"deny": [" "]}}, "empty phrase"),
        ({"insult": {"deny": [{"re": "x(?=y)"}]}}, "look-around"),
        ({"insult": {"deny": [{"re": "(a)\\1"}]}}, "back-references"),
        ({"insult": {"deny": [{"re": "\\bx"}]}}, "this escape"),
        ({"insult": {"deny": [{"re": "Idiot"}]}}, "lower case"),
        ({"insult": {"allow": [{"re": "x*"}]}}, "empty string"),
        ({"insult": {"deny": [{"re": "(x"}]}}, "missing )"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_bad_phrase_list_is_refused(
    monkeypatch: pytest.MonkeyPatch, data: Any, message: str
) -> None:
    monkeypatch.setattr(wording, "_read_phrase_file", lambda language: data)
    load_phrases.cache_clear()
    try:
        with pytest.raises(PhraseListError, match=re.escape(message)):
            load_phrases("en")
    finally:
        load_phrases.cache_clear()
        wording._rules.cache_clear()


# --------------------------------------------------------------------------- vectorised form


def test_check_texts_keeps_row_order_and_treats_null_as_clean() -> None:
    texts = pl.Series(["您好，请按时还款。", None, "让你坐牢", "We know where you live.", ""])
    frame = check_texts(texts)
    assert frame.columns == ["rule_id", "phrase", "reason_en", "reason_zh"]
    assert all(dtype == pl.String for dtype in frame.dtypes)
    assert frame["rule_id"].to_list() == [None, None, "wording.threat", "wording.threat", None]
    assert frame["phrase"].to_list()[2] == "坐牢"
    assert check_texts(pl.Series([], dtype=pl.String)).height == 0


@functools.cache
def _fragments() -> list[str]:
    """Pieces of bad and lawful wording in both languages, and their entries' own text."""
    pieces = [p.source for lang in LANGUAGES for p in load_phrases(lang) if not p.is_regex]
    return pieces + all_texts()


FILLER = [
    "您好",
    "请",
    "还款",
    "您的",
    "家人",
    "单位",
    "法院",
    "依法",
    "不会",
    "通知",
    "借钱",
    "征信",
    "your",
    "we will",
    "not",
    "call",
    "court",
    "pay",
    "employer",
    "family",
    "fee",
    "loan",
    "the police",
    "you",
]
SEPARATORS = ["", " ", "  ", "-", "*", "·", "\u200b", "\u3000", "，", "。", ",", ".", "\n", "😀"]
FULL_WIDTH = {
    c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
}


@st.composite
def texts(draw: st.DrawFn) -> str:
    fragments = _fragments()
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["fragment", "slice", "filler", "chars", "unicode"]))
        if kind == "fragment":
            piece = draw(st.sampled_from(fragments))
        elif kind == "slice":
            whole = draw(st.sampled_from(fragments))
            start = draw(st.integers(0, len(whole)))
            piece = whole[start : draw(st.integers(start, len(whole)))]
        elif kind == "filler":
            piece = draw(st.sampled_from(FILLER))
        elif kind == "chars":
            piece = draw(
                st.text(alphabet="坐牢你通知家人借钱还abcdeklouy 'ＡＢ。，!?-*\u200b", max_size=8)
            )
        else:
            piece = draw(st.text(st.characters(codec="utf-8"), max_size=4))
        style = draw(st.sampled_from(["as is", "upper", "full width", "spaced"]))
        if style == "upper":
            piece = piece.upper()
        elif style == "full width":
            piece = "".join(FULL_WIDTH.get(c, c) for c in piece)
        elif style == "spaced":
            piece = draw(st.sampled_from(SEPARATORS)).join(piece)
        pieces.append(piece)
        pieces.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(pieces)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts(), min_size=1, max_size=25))
def test_vectorised_agrees_on_random_texts(batch: list[str]) -> None:
    assert_vectorised_agrees(batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=25))
def test_normalise_expr_agrees_on_random_texts(batch: list[str]) -> None:
    vectorised = pl.Series(batch, dtype=pl.String).to_frame("t").select(normalise_expr(pl.col("t")))
    assert vectorised.to_series().to_list() == [normalise(t) for t in batch]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("逾期仍未处理的，委托人可能依法通过诉讼等途径维护其合法权益。", True),
        ("我们将向法院起诉", True),
        ("申请强制执行", True),
        ("提交仲裁委员会", True),
        ("再不还就打 官 司", True),
        ("请于本月底前还款", False),
        ("如有疑问请致电客服", False),
        ("Our client may take lawful action, which may include court proceedings.", True),
        ("We will SUE you.", True),
        ("A lawsuit may follow.", True),
        ("a judgment against you", True),
        ("wage garnishment", True),
        ("This is a courtesy reminder.", False),
        ("Please pay by Friday; call us to agree a plan.", False),
        ("Issued by the accounts team", False),
    ],
)
def test_references_to_suit_are_found_in_either_language(text: str, expected: bool) -> None:
    assert wording.mentions_suit(text) is expected


def test_only_the_lawyer_letter_of_the_shipped_templates_speaks_of_suit() -> None:
    from recoup.channels.catalog import templates_mentioning_suit

    assert templates_mentioning_suit() == {("lawyer_letter", "zh"), ("lawyer_letter", "en")}
