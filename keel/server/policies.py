"""Who may decide an approval and who may set a node by hand: the checks the API's
routes and the dashboard's pages both hand to the operations, so the two cannot
disagree.

A role's permission (``decide``, ``act``) is checked before, by the route's or the
page's guard; these go further, per approval or node. Each is a function the operation
calls inside its transaction, against the node as it is then, so nothing is recorded
when it refuses (``ForbiddenError``).
"""

from __future__ import annotations

from collections.abc import Callable

from keel.errors import ForbiddenError
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.spec.model import ApprovalNode, Node, SubworkflowNode


def deciders(approval: ApprovalNode) -> tuple[str, ...]:
    """The names, roles and groups ``approval`` is assigned to (none: anyone who may
    decide)."""
    return (*approval.assignees, *((approval.role,) if approval.role else ()))


def may_decide(who: Identity, approval: ApprovalNode) -> bool:
    allowed = deciders(approval)
    return who.role == "admin" or not allowed or who.matches(allowed)


def check_decider(who: Identity, approval: ApprovalNode) -> None:
    """``ForbiddenError`` unless ``who`` may decide ``approval``."""
    if not may_decide(who, approval):
        raise ForbiddenError(
            f"'{who.name}' may not decide approval '{approval.id}': it is assigned to "
            f"{', '.join(deciders(approval))}"
        )


def decider_check(who: Identity) -> Callable[[ApprovalNode], None]:
    """``check_decider`` for ``who``, as ``approve`` and ``reject`` take it."""
    return lambda approval: check_decider(who, approval)


def setting_allowed(who: Identity) -> Callable[[Node], None]:
    """The guard of setting a node by hand as ``who``: setting an approval decides it
    (``decide``, and its deciders); setting a child-run node passes over every approval
    inside it (an admin only)."""

    def guard(node: Node) -> None:
        if isinstance(node, ApprovalNode):
            if not who.may(Permission.DECIDE):
                raise ForbiddenError(
                    f"setting approval '{node.id}' by hand decides it: token '{who.name}' "
                    f"has role {who.role}, which may not decide approvals"
                )
            check_decider(who, node)
        elif isinstance(node, SubworkflowNode) and who.role != "admin":
            raise ForbiddenError(
                f"setting child-run node '{node.id}' by hand passes over the approvals of "
                "its child run: only an admin may"
            )

    return guard
