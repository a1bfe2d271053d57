"""A small client of the control plane REST API (DESIGN.md "Public contract").

Every call returns decoded JSON or raises a `cli.errors` error: `ApiError` for a 4xx/5xx
answer (carrying the RFC 9457 problem fields and what to do about it), `UnreachableError`
when nothing listens, `SlowError` when the answer does not come within `timeout` seconds.
Tests pass an `httpx.MockTransport` as `transport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from cli.errors import ApiError, CliError, SlowError, UnreachableError

DEFAULT_API_URL = "http://127.0.0.1:7071"


@dataclass(frozen=True)
class Accepted:
    """A 202 answer: the server as stored at acceptance and the operation started."""

    server: dict[str, Any] | None
    operation_id: str | None
    location: str | None


class ControlPlane:
    """Client of the control plane at `base_url` (no trailing `/api`)."""

    def __init__(self, base_url: str = DEFAULT_API_URL, *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 10.0,
                 token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if token:  # a bearer JWT or an API key (`mcpk_...`); both go in Authorization
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, transport=transport,
                                  timeout=timeout, headers=headers)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def list_servers(self) -> list[dict[str, Any]]:
        """All servers (`GET /api/servers`, every page)."""
        return self._every_page("/api/servers")

    def get_server(self, name: str) -> dict[str, Any] | None:
        """One server, or None when the control plane answers 404."""
        try:
            return self._request("GET", _server_path(name)).json()
        except ApiError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def create_server(self, spec: dict[str, Any]) -> Accepted:
        """Create a server from `spec` (`POST /api/servers`); starts a deploy."""
        return _accepted(self._request("POST", "/api/servers", json=spec))

    def update_server(self, name: str, spec: dict[str, Any]) -> Accepted:
        """Apply `spec` as a new revision of `name` (`PUT /api/servers/{name}`)."""
        return _accepted(self._request("PUT", _server_path(name), json=spec))

    def delete_server(self, name: str) -> Accepted:
        """Start deleting `name` (`DELETE /api/servers/{name}`)."""
        return _accepted(self._request("DELETE", _server_path(name)))

    def upload_bundle(self, data: bytes) -> dict[str, Any]:
        """Upload a code bundle (`POST /api/bundles`, docs/bundles.md): `{"bundle": digest, "size", "files"}`."""
        return self._request("POST", "/api/bundles", content=data, timeout=120.0,
                             headers={"Content-Type": "application/gzip"}).json()

    def provision(self, spec: dict[str, Any]) -> Accepted:
        """Start provisioning the Azure control plane (`POST /api/controlplane`)."""
        return _accepted(self._request("POST", "/api/controlplane", json=spec))

    def rollback_server(self, name: str, revision: int) -> Accepted:
        """Re-apply revision `revision` of `name` as a new revision (`POST .../rollback`)."""
        return _accepted(self._request("POST", f"{_server_path(name)}/rollback", json={"revision": revision}))

    def list_revisions(self, name: str) -> list[dict[str, Any]]:
        """Every applied spec of `name`, with diffs (`GET /api/servers/{name}/revisions`, every page)."""
        return self._every_page(f"{_server_path(name)}/revisions")

    def get_operation(self, operation_id: str) -> dict[str, Any]:
        """Status of one lifecycle workflow (`GET /api/operations/{id}`)."""
        return self._request("GET", f"/api/operations/{quote(operation_id, safe='')}").json()

    def get_costs(self, params: dict[str, str], csv: bool = False) -> dict[str, Any] | str:
        """Aggregated cost events (`GET /api/costs`): the JSON body, or CSV text with `csv`."""
        headers = {"Accept": "text/csv"} if csv else {}
        response = self._request("GET", "/api/costs", params=params, headers=headers)
        return response.text if csv else response.json()

    def runbook(self, params: dict[str, str]) -> str:
        """Runbook Markdown for a role and scenario (`GET /api/runbooks`, FR-010)."""
        return self._request("GET", "/api/runbooks", params=params, headers={"Accept": "text/markdown"}).text

    def runbooks(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Runbook metadata with feedback summaries (`GET /api/runbooks`, JSON)."""
        return self._request("GET", "/api/runbooks", params=params).json().get("items", [])

    def checklist(self, name: str, marks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The best-practice checklist of `name`, after setting `marks` when given (FR-012)."""
        if marks:
            return self._request("PATCH", f"{_server_path(name)}/checklist", json={"items": marks}).json()
        return self._request("GET", f"{_server_path(name)}/checklist").json()

    def post_feedback(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Rate a runbook, template or catalog entry (`POST /api/feedback`, FR-011)."""
        return self._request("POST", "/api/feedback", json=entry).json()

    def list_feedback(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Feedback entries newest first (`GET /api/feedback`)."""
        return self._request("GET", "/api/feedback", params=params).json().get("items", [])

    def set_feedback_status(self, entry_id: str, status: str) -> dict[str, Any]:
        """Triage one feedback entry (`PATCH /api/feedback/{id}`, Operators)."""
        return self._request("PATCH", f"/api/feedback/{quote(entry_id, safe='')}", json={"status": status}).json()

    def catalog(self, query: str = "") -> list[dict[str, Any]]:
        """Catalog entry summaries, those matching every word of `query` (`GET /api/catalog?q=`)."""
        return self._request("GET", "/api/catalog", params={"q": query} if query else {}).json().get("items", [])

    def catalog_entry(self, name: str) -> dict[str, Any]:
        """One catalog entry with its ready `spec` and `server_json` (`GET /api/catalog/{name}`)."""
        return self._request("GET", f"/api/catalog/{quote(name, safe='')}").json()

    def read(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON of `GET path` (a path under the control plane, e.g. `/api/audit`); `None`
        values of `params` are left out."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        return self._request("GET", path, params=query).json()

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke an API key (`DELETE /api/keys/{id}`); the revoked record."""
        return self._request("DELETE", f"/api/keys/{quote(key_id, safe='')}").json()

    def create_key(self, request: dict[str, Any]) -> dict[str, Any]:
        """A new API key (`POST /api/keys`): `{"key": plaintext (shown once), "record": ...}`."""
        return self._request("POST", "/api/keys", json=request).json()

    def _every_page(self, path: str) -> list[dict[str, Any]]:
        """The `items` of every page of a paged list, following `continuationToken`
        (docs/paging.md)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            body = self._request("GET", path, params=params).json()
            items += body.get("items", [])
            if not body.get("continuationToken"):
                return items
            params["continuationToken"] = body["continuationToken"]

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UnreachableError(self.base_url) from exc
        except httpx.TimeoutException as exc:
            raise SlowError(self.base_url, self.timeout) from exc
        except httpx.TransportError as exc:
            raise CliError(f"{method} {self.base_url}{path} failed: {exc!r}") from exc
        if response.is_error:
            raise problem_error(response)
        return response


def _server_path(name: str) -> str:
    # Names are validated DNS labels server-side; quoting keeps a bad one from
    # escaping the path (e.g. "../audit") before the server can reject it.
    return f"/api/servers/{quote(name, safe='')}"


def _accepted(response: httpx.Response) -> Accepted:
    body = _json_or_none(response) or {}
    server = body.get("server") if isinstance(body.get("server"), dict) else None
    location = response.headers.get("Location")
    operation_id = body.get("operation_id")
    if not operation_id and location:
        operation_id = location.rstrip("/").rsplit("/", 1)[-1]
    return Accepted(server=server, operation_id=operation_id, location=location)


def problem_error(response: httpx.Response) -> ApiError:
    """Turn a 4xx/5xx answer into an `ApiError`, reading an RFC 9457 body if present.

    The request must be known (`response.request`): whether it carried a credential picks
    the 401 hint."""
    body = _json_or_none(response)
    reason = response.reason_phrase or f"HTTP {response.status_code}"
    sent = "Authorization" in response.request.headers or "X-API-Key" in response.request.headers
    if not isinstance(body, dict):
        # Not problem+json (e.g. a proxy's HTML page): keep a short excerpt as detail.
        return ApiError(response.status_code, reason, response.text.strip()[:300], sent_credential=sent)
    listed = body.get("errors")
    errors = listed if isinstance(listed, list) else []
    field_errors = [{"field": str(e.get("field", "")), "message": str(e.get("message", ""))}
                    for e in errors if isinstance(e, dict)]
    return ApiError(response.status_code, str(body.get("title") or reason),
                    str(body.get("detail") or ""), field_errors, body, sent_credential=sent)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
