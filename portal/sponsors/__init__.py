"""Sponsor progress reports: aggregates, dashboard, PDF and CSV (not built yet: issue 5)."""
