"""Roles and what each may do. A token has one role; a route names the permission it
needs, and the guard (``keel.server.guard``) checks it before the route runs.

Approving is kept apart from operating on purpose: the person who runs a process is not
by default the one who signs off on it (four eyes). An auditor reads and exports
histories and acts on nothing. An admin may do everything.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    #: read runs, histories, approvals, workflows
    READ = "read"
    #: decide approvals (and only those whose assignees or role match)
    DECIDE = "decide"
    #: start runs and act on them: cancel, pause, retry, skip, signal
    ACT = "act"
    #: export runs' histories with their chains, for an audit (``GET /audit/export``)
    AUDIT = "audit"
    #: manage tokens and deploy workflows
    ADMIN = "admin"


ROLES: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "approver": frozenset({Permission.READ, Permission.DECIDE}),
    "operator": frozenset({Permission.READ, Permission.ACT}),
    #: reads and exports everything, changes nothing: the one who checks a process is
    #: neither the one who runs it nor the one who signs it off
    "auditor": frozenset({Permission.READ, Permission.AUDIT}),
    "admin": frozenset(Permission),
}


def check_role(role: str) -> str:
    """``role`` if it is one; a ``ValueError`` naming the roles otherwise."""
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}': use one of {', '.join(ROLES)}")
    return role


def roles_with(permission: Permission) -> list[str]:
    """The roles that have ``permission`` (for the 403 message)."""
    return [role for role, granted in ROLES.items() if permission in granted]
