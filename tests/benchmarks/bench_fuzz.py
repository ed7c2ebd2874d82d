"""The request fuzzer of tests/test_fuzz.py at length: 100,000 cases by default.

    python tests/benchmarks/bench_fuzz.py [--cases 100000] [--seed N]
    PORTAL_TEST_DATABASE=postgresql python tests/benchmarks/bench_fuzz.py

The same app as the test (the suite's database, DNS and SMTP on loopback, the same records),
the same cases (tests/fuzzing.py), signed in as each role and anonymous. Unlike the test it
does not stop at the first 5xx: it counts every one, then prints the cases run, the answers
by status, the 5xx found (each distinct one with a case that gave it), the sessions signed in
again, and the time taken, wall clock and CPU. Exits 1 if any case got a 5xx.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402
from dnslib.server import DNSLogger, DNSServer  # noqa: E402
from hypothesis import given, settings  # noqa: E402

from portal.forwarding.keyring import generate  # noqa: E402
from tests.conftest import TEST_DATABASE, Collector  # noqa: E402
from tests.fuzzing import Case, Fuzzer, hypothesis_home  # noqa: E402
from tests.test_fuzz import add_records, fuzz_settings, fuzzed_app  # noqa: E402
from tests.test_trace import LOOPBACK, ZoneResolver, _free_udp_port  # noqa: E402


class LoopbackController(Controller):
    """aiosmtpd's controller on a port the system picks (as tests/conftest.py's fixture)."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=None,
                        help="a hypothesis seed; without it the derandomized run of the test")
    args = parser.parse_args()

    dns_port = _free_udp_port()
    dns = DNSServer(ZoneResolver(), address=LOOPBACK, port=dns_port,
                    logger=DNSLogger("-request,-reply", logf=lambda _: None))
    dns.start_thread()
    smtp = LoopbackController(Collector(), hostname=LOOPBACK, port=0)
    smtp.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            instance = Path(folder) / "instance"
            generate(instance / "keys")
            app = fuzzed_app(instance, dns_port, smtp.port)
            with app.app_context(), hypothesis_home(Path(folder) / "hypothesis"):
                return run(app, args.cases, args.seed)
    finally:
        smtp.stop()
        dns.stop()


def run(app, cases: int, seed: int | None) -> int:
    started, cpu = time.perf_counter(), time.process_time()
    add_records(app)
    fuzzer = Fuzzer(app)
    setup = time.perf_counter() - started
    found: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def record(case: Case, problem: str) -> None:
        # The last line of a traceback (or the status) names the fault.
        fault = f"{case.rule} {case.method}: {problem.strip().splitlines()[-1]}"
        found[fault] += 1
        examples.setdefault(fault, case.describe())

    hypothesis_settings = fuzz_settings(cases)
    if seed is not None:
        hypothesis_settings = settings(hypothesis_settings, derandomize=False)

    @hypothesis_settings
    @given(fuzzer.plan.cases())
    def one_request(case: Case) -> None:
        fuzzer.run(case, on_error=record)

    if seed is not None:
        from hypothesis import seed as hypothesis_seed

        one_request = hypothesis_seed(seed)(one_request)
    one_request()
    fuzzer.close()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    results = fuzzer.results
    errors = len(results.server_errors)
    print(f"database: {TEST_DATABASE}")
    print(f"cases: {results.cases:,} in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(setup {setup:.1f} s); {results.cases / (wall - setup):.0f} cases/s")
    print("statuses: " + ", ".join(f"{code}: {n:,}" for code, n in sorted(results.statuses.items())))
    print(f"routes and methods reached: {len(results.reached)} of "
          f"{sum(len(r.methods) for r in fuzzer.plan.routes)}; pages harvested: "
          f"{fuzzer.plan.harvest.pages}; sessions signed in again: {fuzzer.sessions.renewals}")
    print(f"5xx found: {errors:,} ({len(found)} distinct)")
    for fault, count in found.most_common():
        print(f"  {count:6,}  {fault}\n          e.g. {examples[fault][:300]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
