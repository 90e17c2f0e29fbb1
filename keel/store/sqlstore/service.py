"""The service's tables (``keel serve``): API tokens, browser sessions and deployed
workflow versions.

Kept apart from runs and their histories: nothing here is on a run's hot path, and
nothing here is part of a run's hash chain. A deploy saves the definition and its
deployment row in one write, so a listed version can always be loaded. A browser
session is kept by its secret's hash and names the token it was opened with by that
token's hash: whoever reads it looks the token up too, so revoking the token ends its
sessions without a write here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from keel.errors import AlreadyExistsError
from keel.spec.model import WorkflowSpec
from keel.store.boundary import store_boundary
from keel.store.deployments import Deployment, StoredVersion, deployment_of, stored_version_of
from keel.store.sqlstore.schedules import SQLSchedules
from keel.store.tokens import TokenRecord, token_of


@store_boundary
class SQLService(SQLSchedules):
    """Tokens, sessions and deployments (and schedules: ``SQLSchedules``) on a SQL
    database, through its ``Dialect``."""

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, token: TokenRecord, secret_hash: str) -> None:
        with self.dialect.write() as cur:
            added = cur.execute(
                self.q["insert_token"],
                (token.name, token.role, json.dumps(list(token.groups)), secret_hash,
                 token.created_at, token.created_by, token.expires_at),
            )  # fmt: skip
            if added.rowcount != 1:
                raise AlreadyExistsError(
                    f"a token named '{token.name}' exists already (names stay taken after "
                    "a token is revoked: they are the identities in histories)"
                )

    def token_by_hash(self, secret_hash: str) -> TokenRecord | None:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_token_by_hash"], (secret_hash,)).fetchone()
        return None if row is None else token_of(row)

    def tokens(self) -> list[TokenRecord]:
        with self.dialect.read() as cur:
            return [token_of(row) for row in cur.execute(self.q["select_tokens"]).fetchall()]

    def revoke_token(self, name: str, at: float, by: str | None = None) -> bool:
        with self.dialect.write() as cur:
            return cur.execute(self.q["revoke_token"], (at, by, name)).rowcount == 1

    # --- browser sessions ----------------------------------------------------------------

    def add_session(
        self, secret_hash: str, token_hash: str, created_at: float, expires_at: float
    ) -> None:
        with self.dialect.write() as cur:
            added = cur.execute(self.q["insert_session"],
                                (secret_hash, token_hash, created_at, expires_at))  # fmt: skip
            if added.rowcount != 1:
                raise AlreadyExistsError("a session with this secret exists already")

    def session_token_hash(self, secret_hash: str, now: float) -> str | None:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_session_token"], (secret_hash, now)).fetchone()
        return None if row is None else str(row[0])

    def end_session(self, secret_hash: str) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["delete_session"], (secret_hash,))

    def forget_sessions(self, before: float) -> int:
        with self.dialect.write() as cur:
            return cur.execute(self.q["forget_sessions"], (before,)).rowcount

    # --- deployments ---------------------------------------------------------------------

    def deploy(
        self,
        specs: Sequence[tuple[WorkflowSpec, str | None]],
        at: float,
        *,
        by: str | None = None,
    ) -> list[Deployment]:
        done: list[Deployment] = []
        with self.dialect.write() as cur:  # all of them or none
            for spec, source in specs:
                self._save_spec(cur, spec, at)
                cur.execute(self.q["insert_deployment"], (spec.name, spec.version, at, by, source))
                rows = cur.execute(self.q["select_deployments_of"], (spec.name,)).fetchall()
                done.append(deployment_of(rows[-1]))
        self._stored_specs.update(spec.version for spec, _ in specs)
        return done

    def deployments(self, workflow: str | None = None) -> list[Deployment]:
        with self.dialect.read() as cur:
            if workflow is None:
                rows = cur.execute(self.q["select_deployments"]).fetchall()
            else:
                rows = cur.execute(self.q["select_deployments_of"], (workflow,)).fetchall()
        return [deployment_of(row) for row in rows]

    def stored_versions(
        self, *, workflow: str | None = None, prefix: str = "", limit: int = 1000
    ) -> list[StoredVersion]:
        # the versions from the prefix to before it followed by "g", past every hex digit
        params = {"low": prefix, "high": prefix + "g", "workflow": workflow, "limit": limit}
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_stored_versions"], params).fetchall()
        return [stored_version_of(row) for row in rows]
