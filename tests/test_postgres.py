"""The report journey and the import's exactly-once rule on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.app import create_app
from portal.assessment.models import Report
from portal.assessment.services import set_status, ship_status_updates, store_report
from portal.db import db
from portal.forwarding.forwarder import apply_status_updates, forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.models import OutboxEnvelope
from portal.forwarding.opening import open_envelope
from tests.conftest import make_settings, receipt_of, submit_report
from tests.test_forwarding import status_of

pytestmark = pytest.mark.postgres




@pytest.fixture
def pg_app(instance, postgres_url):
    app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": postgres_url}))
    with app.app_context():
        yield app
        db.session.remove()
        with db.engine.begin() as connection:  # tables and the migration record alike
            connection.execute(db.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.engine.dispose()


def test_journey_on_postgresql(pg_app):
    client = pg_app.test_client()
    assert db.engine.dialect.name == "postgresql"
    receipt = receipt_of(submit_report(client, child_in_danger="y", description="on postgres"))
    transport = pg_app.extensions["portal.transport"]
    assert forward_once(transport).sent == 1
    ext = pg_app.extensions
    result = import_once(transport, ext["portal.private_keys"], ext["portal.contact_key"])
    assert result.imported == 1
    report = db.session.scalars(select(Report)).one()
    assert report.description == "on postgres" and report.urgent
    assert report.received_at.tzinfo is not None
    set_status(report, "no_action")
    db.session.commit()
    ship_status_updates(transport)
    apply_status_updates(transport)
    assert status_of(client, receipt) == "no_action"


def test_envelope_id_is_unique_in_the_database_itself(pg_app):
    """Two importers racing past the existence check still store one report: the unique
    envelope id refuses the second insert and store_report reports a duplicate."""
    client = pg_app.test_client()
    submit_report(client)
    body = db.session.scalars(select(OutboxEnvelope)).one().body
    payload = open_envelope(body, pg_app.extensions["portal.private_keys"])
    key = pg_app.extensions["portal.contact_key"]
    assert store_report(payload, key) is True
    db.session.commit()
    clone = Report(envelope_id=payload["id"], portal="demo", lang="en", urgent=False,
                   received_at=db.session.scalars(select(Report)).one().received_at,
                   content_type="images", where_found="website", receipt_hash="0" * 64)
    db.session.add(clone)
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    assert store_report(payload, key) is False
    assert db.session.query(Report).count() == 1
