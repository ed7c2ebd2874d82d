"""The shape in BRIEF.md: the public edge never reaches into central or private-key code."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from portal.paths import PACKAGE

FORBIDDEN_FOR_EDGE = ("portal.assessment", "portal.sponsors", "portal.accounts",
                      "portal.forwarding.opening", "portal.forwarding.importer",
                      "portal.forwarding.status_signer")
# The forwarding modules an edge runs: they hold no code that opens envelopes or signs.
EDGE_FORWARDING = ("sealing.py", "forwarder.py", "status_verifier.py", "keyring.py",
                   "models.py", "transport.py", "aws.py")
PRIVATE_KEY_MODULES = ("portal.forwarding.opening", "portal.forwarding.importer",
                       "portal.forwarding.status_signer")


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_reporting_never_imports_central_or_private_key_code():
    for path in (PACKAGE / "reporting").rglob("*.py"):
        for module in imports_of(path):
            assert not module.startswith(FORBIDDEN_FOR_EDGE), f"{path.name} imports {module}"


def test_sealing_module_holds_no_private_key_code():
    source = (PACKAGE / "forwarding" / "sealing.py").read_text()
    assert "PrivateKey" not in source and "decrypt" not in source


def test_no_file_upload_field_exists():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "FileField" not in text and "request.files" not in text, path


def test_edge_side_forwarding_holds_no_signing_or_opening_code():
    for name in EDGE_FORWARDING:
        path = PACKAGE / "forwarding" / name
        for module in imports_of(path):
            assert not module.startswith(PRIVATE_KEY_MODULES), f"{name} imports {module}"
        assert "SigningKey" not in path.read_text(), name


def test_an_edge_process_never_loads_private_key_code(tmp_path):
    """Built for the edge role alone, the app has loaded none of the central key modules."""
    from portal.forwarding.keyring import generate, install_public, read_public
    from tests.conftest import SECRET, THEMES, TRANSLATIONS, database_env

    generate(tmp_path / "central-keys")
    install_public(tmp_path / "keys", read_public(tmp_path / "central-keys"))
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_SECRET_KEY": SECRET,
           "PORTAL_ROLES": "edge", "PORTAL_KEYS_PATH": str(tmp_path / "keys"),
           "PORTAL_THEMES_PATH": str(THEMES), "PORTAL_TRANSLATIONS_PATH": str(TRANSLATIONS),
           **database_env(tmp_path)}
    script = ("import sys; from portal.app import create_app; from portal.settings import "
              "load_settings; create_app(load_settings()); "
              f"print(sorted(m for m in sys.modules if m.startswith({PRIVATE_KEY_MODULES!r})))")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
