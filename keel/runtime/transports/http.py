"""The client's transport to a keel server (``keel serve``): each call is one request
of the HTTP API (a list or a history may take several pages), with a bearer token.

The server records the token's name as who did what: an action cannot name anyone
else (``by``), so this transport refuses ``by`` rather than drop it silently. Each
request carries the caller's current span as a W3C ``traceparent``, so a run it starts
joins the caller's trace (as on a store, where ``start_run`` reads it directly).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx2

from keel.errors import KeelError, RemoteError
from keel.runtime.tracing.context import inject
from keel.runtime.transports.base import Document, Fired, LogPage
from keel.runtime.transports.decode import event_of, log_line_of, run_of, wait_of
from keel.runtime.transports.problems import error_for
from keel.runtime.views.activity import Activity
from keel.runtime.views.why_reasons import RunWhy
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.records import RunRecord, StoredEvent, Wait

#: seconds to wait for the server to answer one request
TIMEOUT = 30.0
#: the most the API gives in one page of runs and of a history
_RUNS_PAGE = 1000
_EVENTS_PAGE = 10_000
_LOG_PAGE = 5000


def _part(text: str) -> str:
    """A run id, node or signal name as one path segment."""
    return quote(text, safe="")


def _rfc3339(at: float) -> str:
    """A timestamp as the API takes times: RFC 3339, in UTC."""
    return datetime.fromtimestamp(at, UTC).isoformat()


def _no_by(by: str | None) -> None:
    if by is not None:
        raise KeelError(
            "over HTTP the server records the token's name as who did it: `by` cannot be "
            "given (make a token named for the person or service)"
        )


class HttpTransport:
    def __init__(self, url: str, token: str | None, *, timeout: float = TIMEOUT,
                 verify: bool | str | ssl.SSLContext = True) -> None:  # fmt: skip
        """``verify``: check the server's TLS certificate against the system's CAs
        (``SSL_CERT_FILE`` too), a CA file (a path), a context, or not at all (False)."""
        self.url = url.rstrip("/")
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._has_token = bool(token)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx2.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  verify=verify)  # fmt: skip

    def close(self) -> None:
        self.http.close()

    # --- one request ----------------------------------------------------------------------

    def call(self, method: str, path: str, *, body: Any = None,
             params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> Any:  # fmt: skip
        """The JSON the server answers; keel's error for a refusal (``problems``)."""
        query = None if params is None else {k: v for k, v in params.items() if v is not None}
        # the caller's span, if any: a run this request starts joins its trace
        headers = inject(dict(headers or {}))
        try:
            response = self.http.request(method, path, json=body, params=query,
                                         headers=headers)  # fmt: skip
        except httpx2.TimeoutException:
            raise RemoteError(f"the keel server at {self.url} did not answer in time") from None
        except httpx2.HTTPError as exc:
            raise RemoteError(f"cannot reach the keel server at {self.url}: {exc or type(exc)}"
                              " (is `keel serve` running there?)") from None  # fmt: skip
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if response.status_code >= 400:
            raise error_for(response.status_code, data, self.url, path,
                            has_token=self._has_token) from None  # fmt: skip
        return data

    def stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[bytes]:
        """A streamed answer's lines as they come (an export of any size, never held
        whole); keel's error for a refusal, as ``call``."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            with self.http.stream("GET", path, params=query, headers=inject({})) as response:
                if response.status_code >= 400:
                    response.read()
                    try:
                        data = response.json()
                    except ValueError:
                        data = response.text
                    raise error_for(response.status_code, data, self.url, path,
                                    has_token=self._has_token) from None  # fmt: skip
                pending = b""
                for chunk in response.iter_bytes():
                    pending += chunk
                    *whole, pending = pending.split(b"\n")
                    for line in whole:
                        yield line + b"\n"
                if pending:
                    yield pending
        except httpx2.TimeoutException:
            raise RemoteError(f"the keel server at {self.url} did not answer in time") from None
        except httpx2.HTTPError as exc:
            raise RemoteError(f"cannot reach the keel server at {self.url}: {exc or type(exc)}"
                              " (is `keel serve` running there?)") from None  # fmt: skip

    # --- runs -----------------------------------------------------------------------------

    def start_spec(self, spec: WorkflowSpec, run_input: Any, *, registry: SpecRegistry | None,
                   origin: str | None, key: str | None) -> str:  # fmt: skip
        # the server starts deployed definitions only: this one, if it is deployed
        return self.start_deployed(spec.name, run_input, version=spec.version, key=key)

    def start_deployed(
        self, workflow: str, run_input: Any, *, version: str | None, key: str | None
    ) -> str:
        headers = None if key is None else {"Idempotency-Key": key}
        body = {"workflow": workflow, "version": version, "input": run_input}
        doc = self.call("POST", "/runs", body=body, headers=headers)
        return str(doc["id"])

    def run(self, run_id: str) -> RunRecord:
        return run_of(self.detail(run_id))

    def runs(self, *, status: str | None, workflow: str | None, parent: str | None,
             limit: int, late: bool | None = None) -> list[RunRecord]:  # fmt: skip
        found: list[RunRecord] = []
        cursor = None
        while len(found) < limit:
            page = self.call("GET", "/runs", params={
                "status": status, "workflow": workflow, "parent": parent, "late": late,
                "cursor": cursor, "limit": min(limit - len(found), _RUNS_PAGE)})  # fmt: skip
            found += [run_of(doc) for doc in page["runs"]]
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        return found

    def runs_doing(self, *, status: str | None, workflow: str | None, limit: int,
                   started_by: str | None = None, late: bool | None = None,
                   ) -> list[tuple[RunRecord, Activity | None]]:  # fmt: skip
        found: list[tuple[RunRecord, Activity | None]] = []
        cursor = None
        while len(found) < limit:
            page = self.call("GET", "/runs", params={
                "status": status, "workflow": workflow, "started_by": started_by,
                "late": late, "cursor": cursor,
                "limit": min(limit - len(found), _RUNS_PAGE)})  # fmt: skip
            for doc in page["runs"]:
                kind, text = doc.get("activity_kind"), doc.get("activity")
                doing = Activity(kind, text) if kind and text else None
                found.append((run_of(doc), doing))
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        return found

    def detail(self, run_id: str) -> Document:
        doc: Document = self.call("GET", f"/runs/{_part(run_id)}")
        return doc

    def history(self, run_id: str) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        after: int | None = 0
        while after is not None:
            page = self.call("GET", f"/runs/{_part(run_id)}/history",
                             params={"after": after, "limit": _EVENTS_PAGE})  # fmt: skip
            events += [event_of(page["run_id"], doc) for doc in page["events"]]
            after = page.get("next_after")
        return events

    def verify(self, run_id: str) -> Document:
        doc: Document = self.call("GET", f"/runs/{_part(run_id)}/verify")
        return doc

    def story(self, run_id: str) -> Document:
        doc: Document = self.call("GET", f"/runs/{_part(run_id)}/story")
        return doc

    def llm_calls(self, run_id: str, node: str | None, full: bool) -> Document:
        doc: Document = self.call("GET", f"/runs/{_part(run_id)}/llm",
                                  params={"node": node, "full": full})  # fmt: skip
        return doc

    def llm_spend(self, since: float, workflow: str | None) -> Document:
        params = {"since": _rfc3339(since), "workflow": workflow}
        doc: Document = self.call("GET", "/llm/spend", params=params)
        return doc

    def why(self, run_id: str) -> RunWhy:
        return RunWhy.model_validate(self.call("GET", f"/runs/{_part(run_id)}/why"))

    def logs(self, run_id: str, node: str | None, attempt: int | None, after: int,
             limit: int) -> LogPage:  # fmt: skip
        page = self.call("GET", f"/runs/{_part(run_id)}/logs", params={
            "node": node, "attempt": attempt, "after": after,
            "limit": min(limit, _LOG_PAGE)})  # fmt: skip
        found = page["run_id"]
        return LogPage(found, page["status"], [log_line_of(found, doc) for doc in page["lines"]])

    def _acted(self, path: str, body: dict[str, Any], by: str | None) -> RunRecord:
        _no_by(by)
        return run_of(self.call("POST", path, body=body))

    def act(self, action: str, run_id: str, reason: str, by: str | None) -> RunRecord:
        return self._acted(f"/runs/{_part(run_id)}/{action}", {"reason": reason}, by)

    def retry(self, run_id: str, node: str | None, reason: str, by: str | None) -> RunRecord:
        return self._acted(f"/runs/{_part(run_id)}/retry", {"node": node, "reason": reason}, by)

    def skip(self, run_id: str, node: str, output: Any, reason: str,
             by: str | None) -> RunRecord:  # fmt: skip
        return self._acted(f"/runs/{_part(run_id)}/nodes/{_part(node)}/skip",
                           {"output": output, "reason": reason}, by)  # fmt: skip

    def fork(self, run_id: str, node: str, sets: dict[str, Any], version: str | None,
             by: str | None, dry_run: bool) -> Document:  # fmt: skip
        _no_by(by)
        body = {"from": node, "set": sets, "version": version, "dry_run": dry_run}
        doc: Document = self.call("POST", f"/runs/{_part(run_id)}/fork", body=body)
        return doc

    # --- waiting --------------------------------------------------------------------------

    def approvals(self, run_id: str | None) -> list[Wait]:
        page = self.call("GET", "/approvals", params={"run_id": run_id})
        return [wait_of(doc) for doc in page["approvals"]]

    def waits(self, run_id: str | None) -> list[Wait]:
        raise KeelError("the HTTP API lists approvals only (approvals()); the other waits "
                        "are in a run's detail (detail(run_id))")  # fmt: skip

    def approve(self, run_id: str, node: str, data: Any, comment: str,
                by: str | None) -> RunRecord:  # fmt: skip
        return self._acted(f"/runs/{_part(run_id)}/approvals/{_part(node)}/approve",
                           {"data": data, "comment": comment}, by)  # fmt: skip

    def reject(self, run_id: str, node: str, comment: str, by: str | None) -> RunRecord:
        return self._acted(f"/runs/{_part(run_id)}/approvals/{_part(node)}/reject",
                           {"comment": comment}, by)  # fmt: skip

    def signal(self, run_id: str, name: str, data: Any, by: str | None) -> RunRecord:
        return self._acted(f"/runs/{_part(run_id)}/signals/{_part(name)}", {"data": data}, by)

    def emit(self, name: str, data: Any, message_id: str) -> list[Fired]:
        doc = self.call("POST", f"/events/{_part(name)}", body={"data": data, "id": message_id})
        return [Fired(r["workflow"], r["id"], r["started"]) for r in doc["runs"]]

    # --- operations -----------------------------------------------------------------------

    def failed(self, workflow: str | None, limit: int) -> list[Document]:
        page = self.call("GET", "/failed", params={"workflow": workflow,
                                                   "limit": min(limit, 1000)})  # fmt: skip
        found: list[Document] = page["failed"]
        return found

    def circuits(self) -> list[Document]:
        found: list[Document] = self.call("GET", "/circuits")["circuits"]
        return found

    def alerts(self) -> list[Document]:
        found: list[Document] = self.call("GET", "/alerts")["alerts"]
        return found

    def workflows(self, name: str | None) -> list[Document]:
        if name is None:
            listed: list[Document] = self.call("GET", "/workflows")["workflows"]
            return listed
        deploys: list[Document] = self.call("GET", f"/workflows/{_part(name)}")["deployments"]
        return deploys

    def versions(self, workflow: str) -> Document:
        doc: Document = self.call("GET", f"/workflows/{_part(workflow)}/versions")
        return doc

    def diff(self, a: str, b: str) -> Document:
        doc: Document = self.call("GET", "/diff", params={"a": a, "b": b})
        return doc

    def deploy(self, specs: list[tuple[WorkflowSpec, SpecRegistry | None, str | None]],
               by: str | None) -> list[Document]:  # fmt: skip
        """One request with every definition (JSON documents, which are YAML): the
        server validates them all before it deploys any. The child workflows they call
        must be deployed already (the server checks them against its own)."""
        _no_by(by)
        text = "\n---\n".join(spec.model_dump_json() for spec, _, _ in specs)
        done: list[Document] = self.call("POST", "/workflows", body={"definition": text})[
            "deployed"
        ]
        return done

    # --- schedules ------------------------------------------------------------------------

    def schedules(self) -> list[Document]:
        listed: list[Document] = self.call("GET", "/schedules")["schedules"]
        return listed

    def pause_schedule(self, name: str, paused: bool, by: str | None) -> None:
        _no_by(by)
        self.call("POST", f"/schedules/{_part(name)}/{'pause' if paused else 'unpause'}")

    def trigger_schedule(self, name: str) -> str:
        return str(self.call("POST", f"/schedules/{_part(name)}/trigger")["run"])

    def backfill(self, name: str, first: float, last: float) -> list[Document]:
        body = {"start": _rfc3339(first), "end": _rfc3339(last)}
        slots: list[Document] = self.call("POST", f"/schedules/{_part(name)}/backfill",
                                          body=body)["slots"]  # fmt: skip
        return slots
