"""Masking and sign-in rules, with plain values."""

from __future__ import annotations

import datetime as dt

import pytest

from recoup.access import rules

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138-1234-5678", "861****5678"),
        ("021-5555123", "02****23"),
        ("123", "****"),
    ],
)
def test_phone_numbers_keep_only_their_ends(value: str, masked: str) -> None:
    assert rules.mask_phone(value) == masked


def test_id_numbers_email_and_addresses_are_masked() -> None:
    assert rules.mask_id_number("110101199001011234") == "110101********1234"
    assert rules.mask_id_number("AB12") == "****"
    assert rules.mask_email("zhang.san@example.com") == "z***@example.com"
    assert rules.mask_address("上海市浦东新区世纪大道100号") == "上海市浦东****"
    assert "100" not in rules.mask_contact("address", "上海市浦东新区世纪大道100号")


def test_lock_out_after_the_last_allowed_failure() -> None:
    assert rules.lock_after_failure(4, NOW, 5, 15) is None
    until = rules.lock_after_failure(5, NOW, 5, 15)
    assert until == NOW + dt.timedelta(minutes=15)
    assert rules.is_locked(until, NOW + dt.timedelta(minutes=14))
    assert not rules.is_locked(until, NOW + dt.timedelta(minutes=15))


def test_weak_passwords_are_refused_with_a_reason() -> None:
    assert rules.password_problem("short", "wang") is not None
    assert rules.password_problem("wangwangwang", "wangwangwang") is not None
    assert rules.password_problem("aaaaaaaaaaaa", "wang") is not None
    assert rules.password_problem("correct-horse-battery", "wang") is None


def test_every_role_has_known_permissions_and_only_admin_manages_users() -> None:
    for role in rules.ROLES:
        assert rules.permissions_for(role) <= set(rules.PERMISSIONS)
    assert [r for r in rules.ROLES if rules.allows(r, "users:admin")] == ["admin"]
    assert not rules.allows("agency", "pii:unmask")
    assert not rules.allows("collector", "ledger:read")
    assert rules.allows("auditor", "audit:read") and not rules.allows("manager", "audit:read")
