"""docs/import-export.md keeps up with recoup.ledger.bulk: every column of every import kind is
documented in its kind's table with its aliases, type and required flag, every accepted word of a
choice column is mentioned, and the example files have headers the import recognises.

No database: the column definitions (`bulk.SPECS`) and the header mapping are read directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recoup.ledger import bulk

DOC = Path(__file__).resolve().parents[2] / "docs" / "import-export.md"
TEXT = DOC.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under the first heading line that starts with `heading`, up to the next heading
    of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    lines = TEXT.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    assert starts, f"no heading starting with {heading!r} in {DOC.name}"
    out: list[str] = []
    for line in lines[starts[0] + 1 :]:
        marks = line.split(" ", 1)[0]
        if marks and set(marks) == {"#"} and len(marks) <= len(level):
            break
        out.append(line)
    return "\n".join(out)


def column_rows(kind: str) -> dict[str, list[str]]:
    """The rows of the kind's column table: column name -> the cells after the name."""
    rows: dict[str, list[str]] = {}
    for line in section(f"### `{kind}`").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        name = cells[0].strip("`")
        assert name not in rows, f"{kind}: column {name} documented twice"
        rows[name] = cells[1:]
    return rows


@pytest.mark.parametrize("kind", bulk.KINDS)
def test_every_column_name_is_in_the_guide(kind: bulk.Kind) -> None:
    missing = [c.name for c in bulk.SPECS[kind] if f"`{c.name}`" not in TEXT]
    assert not missing, f"{kind} columns missing from {DOC.name}: {missing}"


@pytest.mark.parametrize("kind", bulk.KINDS)
def test_the_column_table_of_each_kind_matches_the_code(kind: bulk.Kind) -> None:
    rows = column_rows(kind)
    assert list(rows) == [c.name for c in bulk.SPECS[kind]], "columns, in the import's order"
    for col in bulk.SPECS[kind]:
        aliases, type_, required, _example, _meaning = rows[col.name]
        documented = {a.strip() for a in aliases.split(",") if a.strip()}
        assert documented == set(col.aliases), f"{kind}.{col.name}: header aliases"
        assert type_.startswith(col.type), f"{kind}.{col.name}: type {col.type}"
        if col.max_len:
            assert f"≤ {col.max_len}" in type_, f"{kind}.{col.name}: at most {col.max_len}"
        expected = "yes" if col.required else "no"
        assert required.startswith(expected), f"{kind}.{col.name}: required is {expected}"


def test_the_kinds_are_documented_in_import_order() -> None:
    positions = [TEXT.index(f"\n### `{kind}`") for kind in bulk.KINDS]
    assert positions == sorted(positions)


@pytest.mark.parametrize(("kind", "column"), sorted(bulk._CHOICES))
def test_every_word_of_a_choice_column_is_documented(kind: bulk.Kind, column: str) -> None:
    aliases, _, _ = bulk._CHOICES[(kind, column)]
    text = section(f"### `{kind}`")
    missing = sorted(w for w in {*aliases, *aliases.values()} if w not in text)
    assert not missing, f"{kind}.{column}: accepted words missing from the guide: {missing}"


def test_the_example_files_have_the_headers_the_import_expects(tmp_path: Path) -> None:
    examples = re.findall(r"```csv\n(.*?)```", section("### A complete small example"), re.S)
    assert len(examples) == len(bulk.KINDS), "one example file per kind, in import order"
    for kind, body in zip(bulk.KINDS, examples, strict=True):
        path = tmp_path / f"{kind}.csv"
        path.write_text(body, encoding="utf-8")
        sheet = bulk.load_sheet(path, kind)
        assert sheet.notes == [], f"{kind} example: unknown columns"
        required = {c.name for c in bulk.SPECS[kind] if c.required}
        assert required <= sheet.present, f"{kind} example: required columns missing"
        assert sheet.frame.height == body.count("\n") - 1, f"{kind} example: every row read"
