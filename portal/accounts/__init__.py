"""Staff and sponsor users, roles, passwords and second factor (not built yet: issue 4)."""
