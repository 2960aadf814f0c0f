"""Plugins a tenant's applications call: MCP servers (registry, guard, client)."""
