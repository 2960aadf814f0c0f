"""Who may do what on the admin API: pure checks on the calling key's principal.

A platform admin may do everything. A tenant admin sees and changes only its own tenant
(its keys, credits, usage, statements) and may read prices; anything of another tenant is
answered exactly as if it did not exist (404), so nothing about it leaks. An inference key
may not use the admin API at all (403).
"""

from __future__ import annotations

from tokenmill.control.keys import Principal, Role
from tokenmill.errors import NotFound, PermissionDenied


def require_admin(principal: Principal) -> None:
    if principal.role == Role.INFERENCE:
        raise PermissionDenied("This API key may not use the admin API.")


def require_platform_admin(principal: Principal) -> None:
    require_admin(principal)
    if principal.role != Role.PLATFORM_ADMIN:
        raise PermissionDenied("Only a platform admin may do this.")


def require_tenant(principal: Principal, tenant_id: str) -> None:
    """The tenant is the caller's, or the caller is a platform admin; else "no such tenant"."""
    require_admin(principal)
    if principal.role != Role.PLATFORM_ADMIN and principal.tenant_id != tenant_id:
        raise NotFound(f"No tenant with id {tenant_id!r}.", param="tenant_id")


def require_grantable(principal: Principal, role: Role) -> None:
    """A tenant admin issues inference and tenant-admin keys, never platform-admin ones."""
    if role == Role.PLATFORM_ADMIN and principal.role != Role.PLATFORM_ADMIN:
        raise PermissionDenied("Only a platform admin may issue platform-admin keys.")
