"""Personal data through the API: masked for a role that may not see it, shown and recorded in
the audit log for one that may."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from recoup.access.models import AuditLog
from recoup.ledger import service as ledger
from recoup.web.app import create_app
from tests import factories
from tests.auth import client_as, make_user


def test_analysts_see_masked_data_and_managers_views_are_recorded(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        debtor = factories.debtor(
            s, id_number="110101199001011234", address="北京市朝阳区建国路88号"
        )
        ledger.add_contact_point(s, debtor.id, "phone", "13812345678")
        ledger.update_debtor(s, debtor.id, {"address": "上海市徐汇区漕溪北路1号"}, by="t")
        debtor_id = debtor.id
    app = create_app(engine)
    analyst = client_as(app, make_user(engine, "analyst"))
    masked = analyst.get(f"/api/v1/debtors/{debtor_id}").json()
    assert masked["id_number"] == "110101********1234"
    assert "漕溪北路" not in masked["address"]
    points = analyst.get(f"/api/v1/debtors/{debtor_id}/contact-points").json()["items"]
    assert points[0]["value"] == "138****5678"
    history = analyst.get(f"/api/v1/debtors/{debtor_id}/history").json()["items"]
    assert all("漕溪北路" not in (h["new_value"] or "") for h in history)
    listed = analyst.get("/api/v1/debtors").json()["items"]
    assert all("1234" not in (d["id_number"] or "")[6:-4] for d in listed)

    manager = client_as(app, make_user(engine, "manager"))
    assert manager.get(f"/api/v1/debtors/{debtor_id}").json()["id_number"] == "110101199001011234"
    with Session(engine) as s:
        seen = s.scalars(select(AuditLog).where(AuditLog.action == "view_unmasked")).all()
    assert len(seen) == 1 and seen[0].entity_id == str(debtor_id)
