"""Wording check of the compliance guard (措辞检查): abusive, threatening or misleading wording.

The phrase lists are data: `phrases/<language>.yaml`, one section per category, each with `deny`
entries (wording to flag) and optional `allow` entries (lawful wording that shares words with a
deny entry). An entry is a literal phrase or, written `re: ...`, a regular expression.

Matching runs on *normalised* text (see `normalise`): NFKC, lower case, invisible characters
removed, whitespace collapsed, and separators inside Chinese text dropped ("坐 牢", "坐-牢" →
"坐牢"), so trivial obfuscation does not pass. Within a category, text matched by an allow entry is
masked out before the deny entries are searched, so "您有权向人民法院提起诉讼" passes while a
threat elsewhere in the same message is still caught.

`check_text` / `first_finding` are the scalar form (one template or one note, in the UI or the
sender); `check_texts` is the vectorised form (a Polars Series, for the cycle and bulk template
checks). Both use the same regex sources — written in the subset that Python's `re` and Rust's
`regex` (under Polars) read the same way: no look-around, no back-references, no `\\p{..}` — and
the same fixed category precedence, and a test asserts they agree.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, Literal

import polars as pl
import yaml


@dataclass(frozen=True)
class Category:
    name: str
    reason_en: str
    reason_zh: str

    @property
    def rule_id(self) -> str:
        return f"wording.{self.name}"


# In precedence order: when a text has several findings, the first category here is reported
# first. The most specific and most serious wording (pretending to be the state, forged legal
# papers) comes before generic threats, and insults come last.
CATEGORIES: Final[tuple[Category, ...]] = (
    Category(
        "impersonation",
        "Pretends to be, or to speak for, the police, a court, a prosecutor, a government body or"
        " a lawyer.",
        "冒充公检法、政府机关工作人员或律师。",
    ),
    Category(
        "fake_legal",
        "Refers to false legal papers or proceedings (arrest warrants, summonses, case filings)"
        " or says that not paying is a crime.",
        "虚构法律文书或程序（逮捕令、传票、立案通知等），或称欠款不还即构成犯罪。",
    ),
    Category(
        "threat",
        "Threatens violence, harm, arrest, visits to the debtor's home or work, or legal steps the"
        " creditor cannot or will not take.",
        "以暴力、伤害、抓捕、上门或到单位滋扰，或以债权人不能或不会采取的措施相威胁。",
    ),
    Category(
        "third_party_shaming",
        "Tells, or threatens to tell, the debtor's family, employer, colleagues or contacts about"
        " the debt.",
        "向或威胁向债务人的家人、单位、同事或通讯录联系人透露债务（爆通讯录）。",
    ),
    Category(
        "blacklist_public",
        "Threatens to expose the debt publicly, publish the debtor's details or put the debtor on"
        " a blacklist.",
        "以曝光、公开债务人信息、发朋友圈或列入“黑名单”相威胁。",
    ),
    Category(
        "extra_fees",
        "Demands fees the debtor does not owe, such as collection or visit fees.",
        "索要无合法依据的额外费用（上门费、催收费等）。",
    ),
    Category(
        "borrow_to_repay",
        "Pressures the debtor to borrow elsewhere to repay.",
        "诱导或逼迫债务人借钱还款、以贷养贷。",
    ),
    Category(
        "insult",
        "Insulting, abusive or obscene language.",
        "侮辱、谩骂或使用粗俗下流语言。",
    ),
)
CATEGORY_BY_NAME: Final[dict[str, Category]] = {c.name: c for c in CATEGORIES}
LANGUAGES: Final[tuple[str, ...]] = ("zh", "en")

# --------------------------------------------------------------------------- normalisation
# Each pattern below is read identically by Python's `re` and Rust's `regex`: explicit character
# lists instead of `\s` / `\p{..}`, whose Unicode tables differ between the two engines.

# Control and zero-width characters (ZWSP, joiners, bidi marks, soft hyphen, BOM, variation
# selectors): invisible, so only ever there to split a phrase.
_INVISIBLE = (
    r"[\x00-\x08\x0e-\x1f\x7f\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u2064\u206a-\u206f\ufe00-\ufe0f\ufeff]"
)
_APOSTROPHES = r"[\u2018\u2019\u201b\u02bc\u2032]"
_WHITESPACE = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
# Separators dropped between two Chinese characters: spaces, ASCII punctuation other than the
# sentence marks , ! ? ; : (NFKC turns ，！？；： into those) and 。、 — which stay, so
# "通知你。单位…" does not read as "通知你单位" — quotes, brackets, dashes, dots, arrows, shapes,
# dingbats and emoji.
_SOFT_SEPARATOR = (
    r"[ \"\#\$%\&'\(\)\*\+\-\./<=>@\[\\\]\^_`\{\|\}\~"
    r"\u00b7\u2010-\u2015\u2020-\u2027\u2030-\u203e\u2190-\u21ff\u2500-\u27bf\u2b00-\u2bff"
    r"\u3003\u3008-\u3011\u3014-\u301f\u30fb"
    r"\U0001f000-\U0001faff]+"
)
_HAN_GAP = f"({_HAN}){_SOFT_SEPARATOR}({_HAN})"

_INVISIBLE_RE = re.compile(_INVISIBLE)
_APOSTROPHES_RE = re.compile(_APOSTROPHES)
_WHITESPACE_RE = re.compile(_WHITESPACE)
_HAN_GAP_RE = re.compile(_HAN_GAP)

# What masks an allowed span: it matches no phrase, and it survives no normalisation (so it
# cannot come from the input).
_MASK = "\x00"


def _is_unassigned(ch: str) -> bool:
    """Unassigned in this Python's Unicode tables (planes 4-13 always; private use never)."""
    cp = ord(ch)
    if 0x40000 <= cp <= 0xDFFFF:
        return True
    return cp < 0xF0000 and not 0xD800 <= cp <= 0xDFFF and unicodedata.category(ch) == "Cn"


@functools.cache
def _unassigned() -> str:
    """`_is_unassigned` as a regex class, for Polars.

    Polars' NFKC follows a newer Unicode version than Python's `unicodedata` and would map, say,
    U+1CCD6 (Unicode 16) to "a" where Python leaves it alone. Both forms delete these code points
    before NFKC; decompositions of assigned characters never change (Unicode's stability
    policy), so the two forms then agree.
    """
    ranges: list[tuple[int, int]] = [(0x40000, 0xDFFFF)]
    # Surrogates (D800-DFFF) cannot be in a Polars string; planes 15-16 are private use.
    for first, last in ((0x0, 0xD7FF), (0xE000, 0x3FFFF), (0xE0000, 0xEFFFF)):
        start: int | None = None
        for cp in range(first, last + 1):
            if _is_unassigned(chr(cp)):
                start = cp if start is None else start
            elif start is not None:
                ranges.append((start, cp - 1))
                start = None
        if start is not None:
            ranges.append((start, last))
    return "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in sorted(ranges)) + "]"


def normalise(text: str) -> str:
    """The text the phrase lists are matched against.

    NFKC (full-width letters, digits and spaces become half-width), lower case, invisible
    characters removed, whitespace runs become one space, separators between two Chinese
    characters are dropped, ends trimmed. `normalise_expr` is the same steps on a Polars column.
    """
    if not text.isascii():
        text = "".join(ch for ch in text if not _is_unassigned(ch))
    text = unicodedata.normalize("NFKC", text).lower()
    text = _INVISIBLE_RE.sub("", text)
    text = _APOSTROPHES_RE.sub("'", text)
    text = _WHITESPACE_RE.sub(" ", text)
    # Matches cannot overlap, so "坐 牢 你" needs two passes: the second takes the gaps whose
    # left character was the right end of a match in the first.
    text = _HAN_GAP_RE.sub(r"\1\2", text)
    text = _HAN_GAP_RE.sub(r"\1\2", text)
    return text.strip(" ")


def normalise_expr(expr: pl.Expr) -> pl.Expr:
    """`normalise` as a Polars expression on a string column."""
    expr = expr.str.replace_all(_unassigned(), "")
    expr = expr.str.normalize("NFKC").str.to_lowercase()
    expr = expr.str.replace_all(_INVISIBLE, "")
    expr = expr.str.replace_all(_APOSTROPHES, "'")
    expr = expr.str.replace_all(_WHITESPACE, " ")
    expr = expr.str.replace_all(_HAN_GAP, "${1}${2}")
    expr = expr.str.replace_all(_HAN_GAP, "${1}${2}")
    return expr.str.strip_chars(" ")


# --------------------------------------------------------------------------- phrase lists

# Characters that are special in either engine (Rust also reads & - ~ as class operators).
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")
# English phrases must start and end at a word boundary ("kill you" is not in "skill you").
# Written as consumed characters instead of \b, whose idea of a word character differs between
# the engines outside ASCII.
_EN_BEFORE = "(?:^|[^a-z0-9])"
_EN_AFTER = "(?:$|[^a-z0-9])"
# Groups other than (?:...), escapes that one of the engines lacks or reads differently (the
# Unicode classes \w \s \d come from different Unicode tables: write [a-z], [0-9], " ") and
# {,n}, which only Python reads as {0,n}.
_UNPORTABLE = re.compile(r"\(\?(?!:)|\\[1-9AZzbBpPGgkNXRwWsSdD]|\{,")
_PROBES = ("", " ", "a", "中", "a 中 b")


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in text)


@dataclass(frozen=True)
class Phrase:
    """One entry of a phrase list, compiled to a pattern over normalised text."""

    category: str
    language: str
    kind: Literal["deny", "allow"]
    source: str  # as written in the list: the literal phrase or the regex source
    is_regex: bool
    pattern: str  # regex over normalised text; group 1 is the matched phrase
    compiled: re.Pattern[str] = field(compare=False, repr=False)


class PhraseListError(ValueError):
    """A phrase list that cannot be used; raised when the list is loaded."""


def _read_phrase_file(language: str) -> Any:
    path = resources.files("recoup.compliance").joinpath("phrases", f"{language}.yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compile(category: str, language: str, kind: Literal["deny", "allow"], entry: Any) -> Phrase:
    where = f"{language}.yaml {category}.{kind} {entry!r}"
    if isinstance(entry, str):
        literal = normalise(entry)
        if not literal:
            raise PhraseListError(f"{where}: empty phrase")
        source, is_regex, body = entry, False, _escape(literal)
    elif isinstance(entry, dict) and set(entry) == {"re"} and isinstance(entry["re"], str):
        source, is_regex, body = entry["re"], True, entry["re"]
        if _UNPORTABLE.search(body):
            raise PhraseListError(f"{where}: look-around, flags, back-references or this escape")
        unescaped = re.sub(r"\\.", "", body)
        if unescaped != unescaped.lower():
            raise PhraseListError(f"{where}: text is lower-cased before matching; write lower case")
    else:
        raise PhraseListError(f"{where}: an entry is a phrase or {{re: <regex>}}")
    pattern = f"{_EN_BEFORE}({body}){_EN_AFTER}" if language == "en" else f"({body})"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise PhraseListError(f"{where}: {exc}") from exc
    # Python and Rust replace empty matches differently, so an allowed span must not be empty.
    for probe in _PROBES:
        if any(m.end() == m.start() for m in compiled.finditer(probe)):
            raise PhraseListError(f"{where}: matches the empty string")
    return Phrase(category, language, kind, source, is_regex, pattern, compiled)


@functools.lru_cache(maxsize=len(LANGUAGES))
def load_phrases(language: str) -> tuple[Phrase, ...]:
    """The language's phrase list, compiled, in file order; read once and cached."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    data = _read_phrase_file(language)
    if not isinstance(data, dict):
        raise PhraseListError(f"{language}.yaml: expected a mapping of categories")
    phrases: list[Phrase] = []
    for category, section in data.items():
        if category not in CATEGORY_BY_NAME:
            raise PhraseListError(f"{language}.yaml: unknown category {category!r}")
        if not isinstance(section, dict) or not set(section) <= {"deny", "allow"}:
            raise PhraseListError(f"{language}.yaml {category}: expected `deny` and `allow` lists")
        for kind in ("deny", "allow"):
            entries = section.get(kind) or []
            if not isinstance(entries, list):
                raise PhraseListError(f"{language}.yaml {category}.{kind}: expected a list")
            phrases.extend(_compile(category, language, kind, e) for e in entries)
    return tuple(phrases)


@dataclass(frozen=True)
class _CategoryRules:
    category: Category
    allow: tuple[Phrase, ...]
    deny: tuple[Phrase, ...]


@functools.lru_cache(maxsize=16)
def _rules(languages: tuple[str, ...]) -> tuple[_CategoryRules, ...]:
    """Per category in precedence order, the allow and deny entries of the languages given."""
    phrases = [p for lang in dict.fromkeys(languages) for p in load_phrases(lang)]
    return tuple(
        _CategoryRules(
            category,
            tuple(p for p in phrases if p.category == category.name and p.kind == "allow"),
            tuple(p for p in phrases if p.category == category.name and p.kind == "deny"),
        )
        for category in CATEGORIES
    )


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Finding:
    rule_id: str  # "wording.threat" …
    category: str  # "threat"
    phrase: str  # the list entry that matched (literal or regex source)
    matched: str  # the text that matched (after normalisation)
    reason_en: str
    reason_zh: str


def _finding(rules: _CategoryRules, phrase: Phrase, matched: str) -> Finding:
    c = rules.category
    return Finding(c.rule_id, c.name, phrase.source, matched, c.reason_en, c.reason_zh)


def _scan(text: str, languages: tuple[str, ...], first_only: bool) -> list[Finding]:
    normalised = normalise(text)
    findings: list[Finding] = []
    for rules in _rules(languages):
        masked = normalised
        for allowed in rules.allow:
            masked = allowed.compiled.sub(_MASK, masked)
        for phrase in rules.deny:
            match = phrase.compiled.search(masked)
            if match is not None:
                findings.append(_finding(rules, phrase, match.group(1)))
                if first_only:
                    return findings
    return findings


def check_text(text: str, languages: tuple[str, ...] = LANGUAGES) -> list[Finding]:
    """Every deny entry that matches, once each.

    In a fixed order: by category precedence (`CATEGORIES`), then by the order of `languages`,
    then by the order of the entries in the phrase list.
    """
    return _scan(text, languages, first_only=False)


def first_finding(text: str, languages: tuple[str, ...] = LANGUAGES) -> Finding | None:
    """The finding that blocks the text (the first of `check_text`), or None if it is clean."""
    findings = _scan(text, languages, first_only=True)
    return findings[0] if findings else None


def _any_of(phrases: tuple[Phrase, ...]) -> str:
    """One regex that matches where any of the phrases matches."""
    return "|".join(f"(?:{p.pattern})" for p in phrases)


def check_texts(texts: pl.Series, languages: tuple[str, ...] = LANGUAGES) -> pl.DataFrame:
    """`first_finding` for every text at once.

    One row per input, in order, with columns rule_id, phrase, reason_en, reason_zh (all null
    for a clean text; a null text is clean).

    Two passes, both over whole columns: first one regex per category (the alternation of its
    deny entries) finds each text's first category; then, only on the texts of a category that
    has any, one regex per entry finds the first entry in list order. Most texts are clean, so
    most never meet the per-entry regexes.
    """
    rules = _rules(languages)
    frame = pl.DataFrame({"text": texts.cast(pl.String)})
    frame = frame.with_columns(normalise_expr(pl.col("text")).alias("_normalised"))
    # The text each category searches: the normalised text with its allowed spans masked.
    columns: list[str] = []
    masked: list[pl.Expr] = []
    for n, category_rules in enumerate(rules):
        if category_rules.allow:
            expr = pl.col("_normalised")
            for allowed in category_rules.allow:
                expr = expr.str.replace_all(allowed.pattern, _MASK)
            masked.append(expr.alias(f"_masked_{n}"))
            columns.append(f"_masked_{n}")
        else:
            columns.append("_normalised")
    frame = frame.with_columns(masked) if masked else frame

    first_category = [
        pl.when(pl.col(column).str.contains(_any_of(r.deny))).then(pl.lit(n, dtype=pl.Int64))
        for n, (r, column) in enumerate(zip(rules, columns, strict=True))
        if r.deny
    ]
    category = pl.coalesce(first_category) if first_category else pl.lit(None, dtype=pl.Int64)
    frame = frame.with_row_index("_row").with_columns(category.alias("_category"))

    table: list[tuple[str, str, str, str]] = []  # one row per deny entry, by precedence
    entry = pl.repeat(None, frame.height, dtype=pl.Int64, eager=True)
    for n, (category_rules, column) in enumerate(zip(rules, columns, strict=True)):
        offset = len(table)
        c = category_rules.category
        table.extend((c.rule_id, p.source, c.reason_en, c.reason_zh) for p in category_rules.deny)
        rows = frame.filter(pl.col("_category") == n)
        if rows.height == 0:
            continue
        first_entry = pl.coalesce(
            [
                pl.when(pl.col(column).str.contains(p.pattern)).then(pl.lit(offset + i))
                for i, p in enumerate(category_rules.deny)
            ]
        )
        found = rows.select("_row", first_entry.cast(pl.Int64).alias("entry"))
        entry = entry.scatter(found["_row"], found["entry"])

    names = ("rule_id", "phrase", "reason_en", "reason_zh")
    return pl.DataFrame(
        {
            name: pl.Series(name, [row[i] for row in table], dtype=pl.String).gather(entry)
            for i, name in enumerate(names)
        }
    )


# --------------------------------------------------------------------------- references to suit

# Wording that speaks of suing, courts or enforcement. Not forbidden in itself (a lawyer letter
# may lawfully say the creditor can go to court), but on a time-barred debt it is a threat of
# suit the guard refuses (rule us.time_barred_suit). Matched on normalised text.
_SUIT_ZH = ("诉讼", "起诉", "法院", "仲裁", "法律途径", "法律程序", "强制执行", "立案", "打官司")
_SUIT_EN = (
    "lawsuit",
    "law suit",
    "sue",
    "sued",
    "suing",
    "court",
    "courts",
    "litigation",
    "legal action",
    "lawful action",
    "legal proceedings",
    "court proceedings",
    "judgment",
    "judgement",
    "garnish",
    "garnishment",
)
_SUIT_RE = re.compile(
    "|".join(
        [re.escape(p) for p in _SUIT_ZH]
        + [f"{_EN_BEFORE}{re.escape(p)}{_EN_AFTER}" for p in _SUIT_EN]
    )
)


def mentions_suit(text: str) -> bool:
    """Whether the text speaks of suing, courts, arbitration or enforcement (any language)."""
    return _SUIT_RE.search(normalise(text)) is not None
