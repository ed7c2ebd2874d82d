"""The hosting trace through the back office, on SQLite and PostgreSQL: a private DNS answer is
flagged to the analyst and never stored or shown, and a name the URL rules refuse (an item kept
from before those rules) is never looked up. DNS is the real server of tests/test_trace.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.app import create_app
from portal.assessment.models import Item
from portal.db import db
from tests.conftest import make_settings, tables_containing
from tests.staff import make_user, report_into_centre, sign_in, token
from tests.test_trace import (  # noqa: F401 - fixtures
    PRIVATE_ANSWERS,
    dns_server,
    loopback_only,
    requirements,
)

FLAG = "The host resolves to a non-public address"
REFUSED = "This host name belongs to a local or internal network"


@pytest.fixture
def centre(instance, dns_server):  # noqa: F811 - the fixture imported above
    env = {"PORTAL_DNS_RESOLVER": f"127.0.0.1:{dns_server[0]}"}
    app = create_app(make_settings(instance, env=env))
    app.config["TESTING"] = True
    with app.app_context():
        yield app


def _items(*urls: str) -> dict[str, Item]:
    found = db.session.scalars(select(Item).where(Item.url.in_(urls))).all()
    assert len(found) == len(urls)
    return {item.url: item for item in found}


def _trace_all(app, items: list[Item]) -> tuple[str, int]:
    """An analyst traces each item from the report page; returns that page and the report id."""
    client = app.test_client()
    sign_in(client, make_user("analyst"))
    report_id = items[0].reports[0].id
    for item in items:
        answer = client.post(f"/staff/items/{item.id}/trace?report={report_id}",
                             data={"csrf_token": token(client, f"/staff/reports/{report_id}")})
        assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    return client.get(f"/staff/reports/{report_id}").get_data(as_text=True), report_id


def test_private_answers_are_flagged_and_neither_stored_nor_shown(centre):
    names = ("private", "loopback", "ula", "mapped", "nat64", "linklocal", "mixed")
    urls = [f"http://{name}.example.test/page" for name in names]
    report_into_centre(centre, centre.test_client(), urls="\n".join(urls))
    items = _items(*urls)
    page, _report = _trace_all(centre, list(items.values()))

    for url, item in items.items():
        db.session.refresh(item)
        assert item.traced_at is not None and item.trace_error == "private_address", url
        assert (item.trace_country, item.trace_asn, item.trace_network, item.trace_cdn) == (
            None, None, None, None)
        assert f'id="trace-private-{item.id}"' in page
    assert items["http://mixed.example.test/page"].trace_addresses == "192.0.2.20"  # the public one
    assert all(item.trace_addresses is None for url, item in items.items() if "mixed" not in url)
    assert page.count(FLAG) == len(items)
    for address in PRIVATE_ANSWERS:
        assert address not in page, address
        assert tables_containing(address) == [], address  # audit log included


def test_names_stored_before_the_rules_are_not_looked_up_and_old_answers_go(centre, dns_server):  # noqa: F811
    urls = [f"http://old{n}.example.test/x" for n in range(4)]
    report_into_centre(centre, centre.test_client(), urls="\n".join(urls))
    items = list(_items(*urls).values())
    # As an item stored under the older rules would be: an internal name, traced back then.
    for item, host in zip(items, ("db.corp", "kubernetes.default.svc", "web.service.consul",
                                  "printer.local"), strict=True):
        item.url, item.trace_addresses = f"http://{host}/admin", "10.0.0.5"
    db.session.commit()
    before = list(dns_server[1].questions)

    page, _report = _trace_all(centre, items)

    assert dns_server[1].questions == before  # none of these names reached DNS
    for item in items:
        db.session.refresh(item)
        assert (item.trace_error, item.trace_addresses) == ("refused_name", None), item.url
        assert f'id="trace-refused-{item.id}"' in page
    assert page.count(REFUSED) == len(items)
    assert "10.0.0.5" not in page and tables_containing("10.0.0.5") == []


def test_a_public_answer_is_still_stored_and_shown(centre):
    report_into_centre(centre, centre.test_client(), urls="http://host.example.test/page")
    item = _items("http://host.example.test/page")["http://host.example.test/page"]
    page, _report = _trace_all(centre, [item])
    db.session.refresh(item)
    assert (item.trace_addresses, item.trace_error) == ("192.0.2.10, 2001:db8::10", None)
    assert "192.0.2.10, 2001:db8::10" in page and FLAG not in page and REFUSED not in page
