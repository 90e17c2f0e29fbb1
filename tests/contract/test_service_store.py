"""The service's tables on both backends: tokens (hash only, names never reused,
revocation), deployments (append-only, the newest is current), who started a run, and
listing runs by every server-side filter with a cursor that pages without gaps or
repeats."""

from __future__ import annotations

from typing import Any

import pytest

from keel.errors import StoreError
from keel.spec.model import WorkflowSpec
from keel.store import Store
from keel.store.deployments import current_versions
from keel.store.tokens import TokenRecord
from tests.contract.conftest import T0, Driver, make_spec


def test_a_token_is_found_by_its_hash_only_and_its_name_is_never_reused(store: Store) -> None:
    token = TokenRecord("ci-bot", "operator", ("payments", "ops"), T0, created_by="alice",
                        expires_at=T0 + 3600)  # fmt: skip
    store.add_token(token, "h" * 64)

    assert store.token_by_hash("h" * 64) == token
    assert store.token_by_hash("x" * 64) is None
    with pytest.raises(StoreError, match="'ci-bot' exists already"):
        store.add_token(TokenRecord("ci-bot", "admin", (), T0), "y" * 64)

    assert store.revoke_token("ci-bot", T0 + 5, by="alice") is True
    assert store.revoke_token("ci-bot", T0 + 6) is False  # already revoked
    assert store.revoke_token("nobody", T0 + 6) is False
    revoked = store.token_by_hash("h" * 64)
    assert revoked is not None
    assert (revoked.revoked_at, revoked.revoked_by) == (T0 + 5, "alice")
    assert not revoked.usable_at(T0 + 1)
    with pytest.raises(StoreError, match="exists already"):  # revoked names stay taken
        store.add_token(TokenRecord("ci-bot", "viewer", (), T0 + 7), "z" * 64)
    assert [t.name for t in store.tokens()] == ["ci-bot"]


def test_a_token_is_usable_until_it_expires() -> None:
    token = TokenRecord("t", "viewer", (), T0, expires_at=T0 + 10)
    assert token.usable_at(T0 + 9.9)
    assert not token.usable_at(T0 + 10)


def test_deployments_are_kept_in_order_and_the_newest_is_current(store: Store) -> None:
    first, second = make_spec("claims"), make_spec("claims", {"x": "'two'"})
    other = make_spec("refunds")
    store.deploy([(first, "flows.py")], T0, by="alice")
    store.deploy([(other, "api")], T0 + 1, by="bob")
    (deployed,) = store.deploy([(second, None)], T0 + 2, by="alice")
    store.deploy([(first, None)], T0 + 3, by="carol")  # the rollback: first is current again

    assert deployed.version == second.version
    assert deployed.deployed_by == "alice"
    history = store.deployments("claims")
    assert [(d.version, d.deployed_by) for d in history] == [
        (first.version, "alice"), (second.version, "alice"), (first.version, "carol")]  # fmt: skip
    current = current_versions(store.deployments())
    assert current["claims"].version == first.version
    assert current["refunds"].version == other.version
    assert store.load_spec(second.version) == second  # a deployed version can be loaded
    assert store.deployments("nothing") == []


def test_who_started_a_run_is_kept_and_filters_the_list(store: Store) -> None:
    driver = Driver(store, make_spec("t"), "r1")
    store.create_run(driver.spec, driver.input, driver.first(), started_by="ci-bot")
    Driver(store, make_spec("t"), "r2").start()

    assert store.get_run("r1").started_by == "ci-bot"
    assert store.get_run("r2").started_by is None
    assert [r.id for r in store.list_runs(started_by="ci-bot")] == ["r1"]


def test_runs_are_listed_by_version_and_time_and_paged_by_cursor(store: Store) -> None:
    one, two = make_spec("t"), make_spec("t", {"x": "'two'"})
    for n in range(7):
        driver = Driver(store, one if n % 2 else two, f"r{n}")
        driver.now = T0 + 10 * (n // 2)  # pairs share a creation time: the id breaks ties
        driver.start()

    def ids(**filters: Any) -> list[str]:
        return [record.id for record in store.list_runs(**filters)]

    everything = ids()
    assert everything == ["r6", "r4", "r5", "r2", "r3", "r0", "r1"]
    assert ids(version=one.version) == ["r5", "r3", "r1"]
    assert ids(version=one.version[:12]) == ["r5", "r3", "r1"]  # the digits people see
    assert ids(version=one.version[:12] + "x") == []
    assert ids(created_after=T0 + 10, created_before=T0 + 30) == ["r4", "r5", "r2", "r3"]

    pages, cursor = [], None
    while True:
        page = store.list_runs(limit=2, cursor=cursor)
        if not page:
            break
        pages.append([r.id for r in page])
        cursor = (page[-1].created_at, page[-1].id)
    assert pages == [["r6", "r4"], ["r5", "r2"], ["r3", "r0"], ["r1"]]
    assert ids(version=two.version, limit=1, cursor=(T0 + 20, "r4")) == ["r2"]


def test_a_deploy_of_several_is_all_or_nothing(store: Store) -> None:
    good, other = make_spec("good"), make_spec("other")
    done = store.deploy([(good, "a.yaml"), (other, "b.yaml")], T0, by="alice")
    assert [(d.workflow, d.source) for d in done] == [("good", "a.yaml"), ("other", "b.yaml")]

    broken = make_spec("broken")
    object.__setattr__(broken, "name", None)  # its rows break a NOT NULL: the write fails
    with pytest.raises(StoreError):
        store.deploy([(make_spec("first"), None), (broken, None)], T0 + 1, by="alice")
    assert store.deployments("first") == []


def test_stored_versions_count_their_runs_and_are_found_by_prefix(store: Store) -> None:
    one, two, three = make_spec("t"), make_spec("t", {"x": "'two'"}), make_spec("t", {"x": "'3'"})
    other = make_spec("refunds")
    for n, (spec, at) in enumerate([(one, T0), (two, T0 + 5), (one, T0 + 9), (other, T0 + 1)]):
        driver = Driver(store, spec, f"r{n}")
        driver.now = at
        driver.start()
    store.deploy([(three, "flows.py")], T0 + 20, by="alice")  # deployed, never run

    found = {v.version: v for v in store.stored_versions(workflow="t")}
    assert set(found) == {one.version, two.version, three.version}
    assert [v.version for v in store.stored_versions(workflow="t")] == sorted(found)

    def counted(spec: WorkflowSpec) -> tuple[int, float | None, float | None, float]:
        v = found[spec.version]
        return v.runs, v.first_run_at, v.last_run_at, v.stored_at

    assert counted(one) == (2, T0, T0 + 9, T0)
    assert counted(two) == (1, T0 + 5, T0 + 5, T0 + 5)
    assert counted(three) == (0, None, None, T0 + 20)
    assert {v.workflow for v in store.stored_versions()} == {"t", "refunds"}

    prefix = one.version[:6]
    assert [v.version for v in store.stored_versions(prefix=prefix)] == [one.version]
    assert [v.version for v in store.stored_versions(prefix=one.version)] == [one.version]
    assert store.stored_versions(prefix=prefix, workflow="refunds") == []
    assert store.stored_versions(workflow="nothing") == []
    assert len(store.stored_versions(limit=2)) == 2
