"""Every page of the dashboard, enumerated from the app: without a session a page leads
to the sign-in form, a role that may not gets 403 (and nothing changes), a change
without the session's CSRF token gets 403, and a role that may succeeds. A new page
without a request in one of the ``requests_*.py`` tables fails the first test.

Each view's tests keep their requests in ``tests/dashboard/requests_<view>.py`` as
``REQUESTS = {(method, path template): lambda ui: (path, form or None)}``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest

import tests.dashboard
from keel.server.guard import PUBLIC_PAGES, api_routes, permission_of
from keel.server.roles import ROLES
from tests.dashboard.conftest import Ui

Request = Callable[[Ui], tuple[str, dict[str, Any] | None]]


def _tables() -> dict[tuple[str, str], Request]:
    found: dict[tuple[str, str], Request] = {}
    for info in pkgutil.iter_modules(tests.dashboard.__path__):
        if info.name.startswith("requests_"):
            module = importlib.import_module(f"tests.dashboard.{info.name}")
            table: dict[tuple[str, str], Request] = module.REQUESTS
            assert not set(table) & set(found), f"{info.name} repeats a page"
            found.update(table)
    return found


REQUESTS = _tables()


def pages(ui: Ui) -> list[tuple[str, str]]:
    app = ui.clients["admin"].app
    return sorted((method, route.path) for route in api_routes(app.routes)  # type: ignore[attr-defined]
                  for method in route.methods or ()
                  if route.path == "/" or route.path.startswith("/ui/"))  # fmt: skip


def test_every_page_has_a_request_here(ui: Ui) -> None:
    assert sorted(pages(ui)) == sorted(REQUESTS)


def call(ui: Ui, method: str, template: str, role: str, csrf: bool = True) -> Any:
    path, form = REQUESTS[(method, template)](ui)
    client = ui.clients[role]
    if method == "GET":
        return client.get(path)
    data = dict(form or {})
    if csrf and role != "anonymous":
        data["csrf"] = ui.csrf(role)
    return client.request(method, path, data=data)


@pytest.mark.parametrize(("method", "template"), sorted(REQUESTS))
def test_a_page_needs_a_session_and_the_right_role(ui: Ui, method: str, template: str) -> None:
    route = next(r for r in api_routes(ui.clients["admin"].app.routes)  # type: ignore[attr-defined]
                 if r.path == template and method in (r.methods or ()))  # fmt: skip
    permission = permission_of(route)
    if template in PUBLIC_PAGES:
        assert permission is None
        assert call(ui, method, template, "anonymous").status_code in (200, 303, 307, 403)
        return
    assert permission is not None
    events_before = ui.store.get_run(ui.seeded.waiting).last_seq

    anonymous = call(ui, method, template, "anonymous")
    if template.startswith("/ui/live/"):  # a stream: its EventSource cannot show a form
        assert anonymous.status_code == 401, anonymous.text
    else:
        assert anonymous.status_code == 303, anonymous.text
        assert anonymous.headers["location"].startswith("/ui/sign-in?next=")

    refused = [role for role, granted in ROLES.items() if permission not in granted]
    for role in refused:
        response = call(ui, method, template, role)
        assert response.status_code == 403, (role, response.text)
        assert role in response.text
    allowed = [role for role, granted in ROLES.items() if permission in granted]
    if method != "GET":
        forged = call(ui, method, template, allowed[0], csrf=False)
        assert forged.status_code == 403, forged.text
    assert ui.store.get_run(ui.seeded.waiting).last_seq == events_before  # nothing recorded

    response = call(ui, method, template, allowed[0])
    assert response.status_code in (200, 303), (allowed[0], response.text)
