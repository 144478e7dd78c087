"""Test-only helpers: a real redis-server, free ports, request signing."""
