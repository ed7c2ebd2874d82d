"""The shape in BRIEF.md: the public edge never reaches into central or private-key code."""

from __future__ import annotations

import ast
from pathlib import Path

from portal.paths import PACKAGE

FORBIDDEN_FOR_EDGE = ("portal.assessment", "portal.sponsors", "portal.accounts",
                      "portal.forwarding.opening", "portal.forwarding.importer")


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
