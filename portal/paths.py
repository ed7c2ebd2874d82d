"""Where the shipped folders live: next to the package, in the source checkout."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
THEMES = ROOT / "themes"
TRANSLATIONS = ROOT / "translations"
