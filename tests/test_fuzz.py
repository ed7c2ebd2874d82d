"""No request gets a 5xx: hypothesis over every route of the app (tests/fuzzing.py), signed in
as each role and anonymous, on the suite's real database, with real DNS and SMTP on loopback.

FUZZ_CASES cases in the suite (about a minute); tests/benchmarks/bench_fuzz.py runs 100,000.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from portal.app import create_app
from tests.conftest import make_settings, submit_report
from tests.fuzzing import Case, Fuzzer, hypothesis_home
from tests.staff import report_into_centre
from tests.test_trace import dns_server, requirements  # noqa: F401 - fixtures

FUZZ_CASES = int(os.environ.get("PORTAL_FUZZ_CASES", "10000"))


def fuzz_settings(max_examples: int):
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=False,
                    phases=(Phase.explicit, Phase.generate, Phase.shrink))


def fuzzed_app(instance, dns_port: int, smtp_port: int):
    """The whole service on the suite's database, DNS and SMTP on loopback."""
    env = {"PORTAL_DNS_RESOLVER": f"127.0.0.1:{dns_port}",
           "PORTAL_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
           "PORTAL_MAIL_FROM": "team@central.example"}
    app = create_app(make_settings(instance, env=env))
    app.config["TESTING"] = True
    return app


def add_records(app) -> None:
    """Two reports in the centre (three items) and one only at the edge, so that ids in URLs
    name real records (in an app context)."""
    client = app.test_client()
    report_into_centre(app, client, urls="http://one.example.test/a\nhttps://two.example.test/b")
    report_into_centre(app, client, child_in_danger="y")
    submit_report(client)


@pytest.fixture
def fuzz_app(instance, dns_server, smtp_server):  # noqa: F811 - the fixture imported above
    app = fuzzed_app(instance, dns_server[0], smtp_server[0].port)
    with app.app_context():
        add_records(app)
        yield app


def test_no_request_gets_a_server_error(fuzz_app, tmp_path):
    fuzzer = Fuzzer(fuzz_app)

    @fuzz_settings(FUZZ_CASES)
    @given(fuzzer.plan.cases())
    def one_request(case: Case) -> None:
        status = fuzzer.run(case)
        assert status < 500, fuzzer.results.server_errors[-1]

    try:
        with hypothesis_home(tmp_path / "hypothesis"):
            one_request()
    finally:
        fuzzer.close()
    results = fuzzer.results
    print(f"fuzz: {results.cases} cases, statuses {dict(sorted(results.statuses.items()))}, "
          f"{fuzzer.sessions.renewals} sessions renewed")
    assert results.cases >= FUZZ_CASES
    assert not results.server_errors
    # The cases reached every route with every one of its methods (not only 404s), and
    # many got past the routing and the forms' checks.
    expected = {(route.rule, method) for route in fuzzer.plan.routes for method in route.methods}
    assert expected - results.reached == set()
    assert results.statuses[200] > FUZZ_CASES / 20
    assert results.statuses[302] > FUZZ_CASES / 50
