"""Debtors, their history, flags and contact points through the API."""

from __future__ import annotations

from tests.api.conftest import Api, field_names
from tests.auth import make_user


def test_create_get_update_with_history(api: Api) -> None:
    debtor = api.debtor(
        external_ref="CUST-1", name="李四", region="Shanghai", birth_date="1990-05-17"
    )
    assert debtor["timezone"] == "Asia/Shanghai" and debtor["language"] == "zh-CN"
    assert api.ok(api.get(f"/debtors/{debtor['id']}")) == debtor

    changed = api.ok(
        api.patch(
            f"/debtors/{debtor['id']}",
            {"employer": "华为", "region": "Shenzhen", "notes": None},
            headers=make_user(api.engine, "admin", username="collector-7").headers,
        )
    )
    assert changed["employer"] == "华为" and changed["region"] == "Shenzhen"
    assert changed["updated_at"] >= debtor["updated_at"]
    history = api.ok(api.get(f"/debtors/{debtor['id']}/history"))
    assert history["total"] == 2  # notes was already empty: no change recorded
    by_field = {h["field"]: h for h in history["items"]}
    assert by_field["region"]["old_value"] == "Shanghai"
    assert by_field["region"]["new_value"] == "Shenzhen"
    assert by_field["employer"]["changed_by"] == "collector-7"

    api.ok(api.patch(f"/debtors/{debtor['id']}", {"notes": "prefers WeChat"}))
    api.ok(api.patch(f"/debtors/{debtor['id']}", {"notes": None}))
    assert api.ok(api.get(f"/debtors/{debtor['id']}"))["notes"] is None
    latest = api.ok(api.get(f"/debtors/{debtor['id']}/history", params={"limit": 1}))
    assert latest["total"] == 4 and latest["items"][0]["old_value"] == "prefers WeChat"

    for body, field in (
        ({"name": None}, "name"),
        ({"name": "   "}, "name"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"language": "fr"}, "language"),
        ({"birth_date": "1990-02-30"}, "birth_date"),
        ({"nickname": "x"}, "nickname"),
        ({"kind": None}, "kind"),
        ({"night_contact_consent": None}, "night_contact_consent"),
        ({"night_contact_consent": "perhaps"}, "night_contact_consent"),
    ):
        response = api.patch(f"/debtors/{debtor['id']}", body)
        assert response.status_code == 422, body
        assert field_names(response) == [field], body
    assert api.patch("/debtors/999", {"name": "x"}).status_code == 404
    assert api.get("/debtors/999/history").status_code == 404
    conflict = api.post("/debtors", {"external_ref": "CUST-1", "name": "x"})
    assert conflict.status_code == 409


def test_night_contact_consent_is_a_profile_field_with_history(api: Api) -> None:
    debtor = api.debtor()
    assert debtor["night_contact_consent"] is False
    given = api.ok(api.patch(f"/debtors/{debtor['id']}", {"night_contact_consent": True}))
    assert given["night_contact_consent"] is True
    history = api.ok(api.get(f"/debtors/{debtor['id']}/history"))["items"]
    assert (history[0]["field"], history[0]["old_value"], history[0]["new_value"]) == (
        "night_contact_consent",
        "False",
        "True",
    )
    assert api.debtor(night_contact_consent=True)["night_contact_consent"] is True


def test_list_filters(api: Api) -> None:
    a = api.debtor(name="Zhang Wei", region="SH")
    b = api.debtor(name="zhang_san 100%", region="BJ", kind="company")
    c = api.debtor(name="Li Na", region="SH")

    def ids(**params: object) -> list[int]:
        page = api.ok(api.get("/debtors", params=params))
        assert page["total"] == len(page["items"])
        return [d["id"] for d in page["items"]]

    assert ids(region="SH") == [a["id"], c["id"]]
    assert ids(kind="company") == [b["id"]]
    assert ids(name="ZHANG") == [a["id"], b["id"]]
    assert ids(name="100%") == [b["id"]]
    assert ids(name="g_s") == [b["id"]]  # "_" is a literal, not a wildcard
    assert ids(name="%") == [b["id"]]
    assert ids(region="SH", name="li") == [c["id"]]
    assert ids(external_ref=c["external_ref"]) == [c["id"]]
    page = api.ok(api.get("/debtors", params={"limit": 1, "offset": 1}))
    assert page["total"] == 3 and [d["id"] for d in page["items"]] == [b["id"]]
    assert field_names(api.get("/debtors", params={"kind": "robot"})) == ["kind"]
    assert field_names(api.get("/debtors", params={"limit": 501})) == ["limit"]


def test_flags(api: Api) -> None:
    debtor = api.debtor()
    path = f"/debtors/{debtor['id']}/flags"
    flag = api.ok(api.post(path, {"flag": "dispute", "reason": "says the loan is not his"}), 201)
    assert flag["is_active"] and flag["set_by"].startswith("admin")  # the signed-in user
    assert api.post(path, {"flag": "dispute", "reason": "again"}).status_code == 409
    api.ok(api.post(path, {"flag": "vulnerable", "reason": "hospitalised"}), 201)
    assert field_names(api.post(path, {"flag": "annoying", "reason": "x"})) == ["flag"]
    assert field_names(api.post(path, {"flag": "dispute"})) == ["reason"]
    assert api.post("/debtors/999/flags", {"flag": "dispute", "reason": "x"}).status_code == 404

    cleared = api.ok(api.post(f"/flags/{flag['id']}/clear", {"reason": "contract shown"}))
    assert not cleared["is_active"] and cleared["clear_reason"] == "contract shown"
    assert api.post(f"/flags/{flag['id']}/clear", {"reason": "x"}).status_code == 409
    assert api.post("/flags/999/clear", {"reason": "x"}).status_code == 404

    def flags(**params: object) -> list[str]:
        return [f["flag"] for f in api.ok(api.get(path, params=params))["items"]]

    assert flags() == ["dispute", "vulnerable"]
    assert flags(active="true") == ["vulnerable"]
    assert flags(active="false") == ["dispute"]
    assert api.get("/debtors/999/flags").status_code == 404


def test_contact_points(api: Api) -> None:
    debtor = api.debtor()
    path = f"/debtors/{debtor['id']}/contact-points"
    phone = api.ok(api.post(path, {"kind": "phone", "value": "+86 138-0013-8000"}), 201)
    assert phone["owner"] == "self" and phone["is_active"] and not phone["has_consent"]
    api.ok(
        api.post(
            path,
            {"kind": "phone", "value": "13900139000", "owner": "emergency", "owner_name": "王五"},
        ),
        201,
    )
    assert field_names(api.post(path, {"kind": "email", "value": "not-an-address"})) == ["value"]
    assert field_names(api.post(path, {"kind": "fax", "value": "123456"})) == ["kind"]
    assert field_names(api.post(path, {"kind": "phone", "value": "1" * 301})) == ["value"]
    assert api.post("/debtors/999/contact-points", {"kind": "phone", "value": "1"}).status_code == (
        404
    )

    updated = api.ok(
        api.patch(f"/contact-points/{phone['id']}", {"is_verified": True, "has_consent": True})
    )
    assert updated["is_verified"] and updated["has_consent"]
    assert field_names(api.patch(f"/contact-points/{phone['id']}", {"value": "abc"})) == ["value"]
    assert field_names(api.patch(f"/contact-points/{phone['id']}", {"is_active": None})) == [
        "is_active"
    ]
    assert api.patch("/contact-points/999", {"is_verified": True}).status_code == 404

    listed = api.ok(api.get(path))
    assert listed["total"] == 2 and listed["items"][0] == updated
    history = api.ok(api.get(f"/debtors/{debtor['id']}/history"))["items"]
    assert {(h["entity"], h["field"]) for h in history} >= {
        ("contact_point", "value"),
        ("contact_point", "is_verified"),
        ("contact_point", "has_consent"),
    }
