"""The audit trail's hash chain, its verifier, and what never goes into it."""

from __future__ import annotations

from sqlalchemy import text

from portal import audit
from portal.db import set_context, tenant_scope
from tests.conftest import tenant_session
from tests.factories import make_tenant


def as_tenant(conn, tenant_id: int) -> None:
    """The owner role is subject to (forced) RLS too: tamper from inside the tenant."""
    conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})


def test_chain_links_each_row_to_the_one_before(session):
    tenant = make_tenant(session)
    set_context(session, tenant_id=tenant.id)
    first = audit.record(session, "a.one", tenant_id=tenant.id, actor="x")
    second = audit.record(session, "a.two", tenant_id=tenant.id, actor="x")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == audit.GENESIS and second.prev_hash == first.hash
    assert audit.verify_chain(session, audit.chain_key(tenant.id)).ok


def test_secrets_are_redacted(session):
    tenant = make_tenant(session)
    set_context(session, tenant_id=tenant.id)
    event = audit.record(
        session,
        "a.secret",
        tenant_id=tenant.id,
        after={"password": "hunter2hunter2", "totp_code": "123456", "nested": {"api_key": "k"}, "role": "buyer"},
    )
    assert event.after == {
        "password": "[redacted]",
        "totp_code": "[redacted]",
        "nested": {"api_key": "[redacted]"},
        "role": "buyer",
    }


def test_global_events_are_written_from_a_tenant_context_but_not_readable_there(session):
    tenant = make_tenant(session)
    set_context(session, tenant_id=tenant.id)
    audit.record(session, "auth.signed_in", tenant_id=None, actor="someone@example.org")
    assert session.execute(text("SELECT count(*) FROM audit_events WHERE tenant_id IS NULL")).scalar_one() == 0
    with tenant_scope(session, None):
        assert session.execute(text("SELECT count(*) FROM audit_events WHERE tenant_id IS NULL")).scalar_one() == 1


def test_verifier_names_the_first_tampered_row(committed_db, owner_engine):
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        tenant_id = tenant.id
    with tenant_session(committed_db, tenant_id) as s:
        ids = [audit.record(s, f"a.{i}", tenant_id=tenant_id, actor="x").id for i in range(5)]
    with tenant_session(committed_db, None) as s:
        assert all(r.ok for r in audit.verify_chains(s, [tenant_id]))
    # Someone with owner rights edits row 3 directly in the database.
    with owner_engine.begin() as conn:
        as_tenant(conn, tenant_id)
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = :i"), {"i": ids[2]})
    with tenant_session(committed_db, None) as s:
        result = {r.chain_key: r for r in audit.verify_chains(s, [tenant_id])}[audit.chain_key(tenant_id)]
    assert not result.ok and result.first_broken_id == ids[2] and "hash" in result.problem


def test_verifier_notices_a_deleted_row_and_a_truncated_tail(committed_db, owner_engine):
    with tenant_session(committed_db, None) as s:
        tenant_id = make_tenant(s).id
    with tenant_session(committed_db, tenant_id) as s:
        ids = [audit.record(s, f"a.{i}", tenant_id=tenant_id).id for i in range(4)]
    with owner_engine.begin() as conn:
        as_tenant(conn, tenant_id)
        conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": ids[1]})
    with tenant_session(committed_db, tenant_id) as s:
        result = audit.verify_chain(s, audit.chain_key(tenant_id))
    assert not result.ok and result.first_broken_id == ids[2] and "gap" in result.problem
    with owner_engine.begin() as conn:
        as_tenant(conn, tenant_id)
        conn.execute(text("DELETE FROM audit_events WHERE id >= :i"), {"i": ids[1]})
    with tenant_session(committed_db, tenant_id) as s:
        result = audit.verify_chain(s, audit.chain_key(tenant_id))
    assert not result.ok and "missing" in result.problem


def test_cli_verifies_and_exits_nonzero_on_tampering(committed_app, committed_db, owner_engine):
    with tenant_session(committed_db, None) as s:
        tenant_id = make_tenant(s).id
    with tenant_session(committed_db, tenant_id) as s:
        event_id = audit.record(s, "a.cli", tenant_id=tenant_id).id
    runner = committed_app.test_cli_runner()
    ok = runner.invoke(args=["audit-verify"])
    assert ok.exit_code == 0 and f"tenant:{tenant_id}: ok (1 rows)" in ok.output
    with owner_engine.begin() as conn:
        as_tenant(conn, tenant_id)
        conn.execute(text("UPDATE audit_events SET reason = 'edited' WHERE id = :i"), {"i": event_id})
    broken = runner.invoke(args=["audit-verify"])
    assert broken.exit_code == 1 and f"BROKEN at row id {event_id}" in broken.output


def test_deferred_events_are_written_at_commit_and_dropped_with_a_rolled_back_savepoint(db):
    s = db.session()
    tenant = make_tenant(s)
    set_context(s, tenant_id=tenant.id)
    audit.defer(s, "kept.event", tenant_id=tenant.id, actor="x")
    nested = s.begin_nested()
    audit.defer(s, "undone.event", tenant_id=tenant.id, actor="x")
    nested.rollback()
    s.commit()
    actions = s.execute(text("SELECT action FROM audit_events WHERE tenant_id = :t"), {"t": tenant.id}).scalars().all()
    assert actions == ["kept.event"]
    assert audit.verify_chain(s, audit.chain_key(tenant.id)).ok
    s.close()


def test_the_trail_filters_by_action_person_object_and_day_and_downloads_as_safe_csv(app, session):
    """Auditors narrow the trail and take it away as CSV; a label a spreadsheet would run as a formula is text."""
    import csv
    import io
    import re
    from datetime import date, timedelta

    from portal.auth.permissions import Role
    from tests.factories import PASSWORD, make_member
    from tests.helpers import PortalClient

    tenant = make_tenant(session)
    officer = make_member(session, tenant, Role.COMPLIANCE_OFFICER)
    set_context(session, tenant_id=tenant.id)
    recorded = [
        ("document.approved", "chloe@x.example", "7"),
        ("document.rejected", '=HYPERLINK("http://evil.example")', "8"),
        ("order.closed", "ben@x.example", "42"),
    ]
    for action, actor, object_id in recorded:
        audit.record(session, action, tenant_id=tenant.id, actor=actor, object_type=action.split(".")[0],
                     object_id=object_id, after={"n": object_id})  # fmt: skip
    session.flush()
    client = PortalClient(app.test_client())
    client.sign_in(officer.email, PASSWORD, officer.secret)

    def actions(query: str) -> list[str]:
        return re.findall(r"<td><code>([^<]+)</code></td>", client.get(f"/audit?{query}").text)

    assert actions("action=document") == ["document.rejected", "document.approved"]
    assert actions("who=BEN") == ["order.closed"]
    assert actions("object=document+7") == ["document.approved"]
    today = date.today()
    assert len(actions(f"since={today}&until={today}")) == 3 and actions(f"until={today - timedelta(days=1)}") == []
    wrong = client.get("/audit?since=yesterday")
    assert wrong.status_code == 200 and "Enter the date as YYYY-MM-DD" in wrong.text and len(actions("since=x")) == 3

    download = client.get("/audit.csv?action=document")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.data.decode())))
    assert [r["action"] for r in rows] == ["document.approved", "document.rejected"]  # oldest first
    assert rows[1]["actor"] == '\'=HYPERLINK("http://evil.example")' and len(rows[0]["hash"]) == 64
