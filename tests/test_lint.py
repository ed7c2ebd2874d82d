"""ruff, with the rule set in pyproject.toml, over the application, tests and scripts."""

import importlib.util
import subprocess
import sys

from portal.paths import ROOT
from tests.conftest import need


def test_ruff_is_clean():
    need(importlib.util.find_spec("ruff") is not None, "ruff is not installed")
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "portal", "tests", "scripts", "infra", "wsgi.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
