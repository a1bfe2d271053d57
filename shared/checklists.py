"""Best-practice checklist per server (FR-012): security, compliance and operations items.

Automatic items are evaluated from the platform's own state (settings, the server's
spec, its revisions, the Kubernetes objects the spec renders to); manual items are
marked by people (`PATCH /api/servers/{name}/checklist`). The `checklists` document
of a server (`id` = `server` = its name) keeps every item's last state.

When flips are detected: automatic items are re-evaluated on every read and every
mark of the checklist, and compared with the stored document; each item whose state
changed is a flip, returned by `sync` so the caller audits it, and the document is
rewritten (etag-guarded, retried on a lost race so two readers do not both report
one flip). Readiness score = checked items / applicable items.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from shared import manifests
from shared.auth.principal import AuthMode
from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.models import Server, ServerKind, utc_now
from shared.store import DocumentStore

# env names that look like credentials: a value set there is a secret in plain env (NFR-SEC-002)
SECRET_NAME_PATTERNS = ("*TOKEN*", "*KEY*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*CREDENTIAL*",
                        "*CONNECTION_STRING*", "*PRIVATE*")
ALL_KINDS = frozenset(ServerKind)
Check = Callable[["Facts"], tuple[bool, str]]


@dataclass(frozen=True)
class Facts:
    """What automatic items read: the server, the settings, and whether an earlier revision exists."""

    server: Server
    settings: Any
    rollback_target: int | None


@dataclass(frozen=True)
class Item:
    """One checklist item; `check` is None for a manual item."""

    id: str
    title: str
    category: str  # security | compliance | operations
    reference: str
    check: Check | None = None
    kinds: frozenset[ServerKind] = ALL_KINDS


def _auth_on(facts: Facts) -> tuple[bool, str]:
    mode = AuthMode(facts.settings.auth_mode)
    return mode is not AuthMode.NONE, f"auth_mode is {mode.value}"


def _sandbox_on(facts: Facts) -> tuple[bool, str]:
    team = facts.server.spec.owner_team
    if facts.settings.gateway_sandbox != "bwrap":
        return False, f"gateway_sandbox is {facts.settings.gateway_sandbox}"
    if team and team in facts.settings.gateway_unsandboxed_teams:
        return False, f"team '{team}' is opted out of the sandbox"
    return True, "stdio children run in bubblewrap"


def plain_env_secrets(server: Server) -> list[str]:
    """`<source>.env.<NAME>` for each env variable whose name looks like a credential
    and whose value is set (names only: the value never leaves the spec)."""
    spec = server.spec
    source_name, source = next(((name, value) for name, value in (("package", spec.package),
                                                                  ("container", spec.container)) if value),
                               ("", None))
    env: dict[str, str] = getattr(source, "env", {}) or {}
    return [f"{source_name}.env.{name}" for name, value in sorted(env.items())
            if value and any(fnmatch.fnmatchcase(name.upper(), pattern) for pattern in SECRET_NAME_PATTERNS)]


def _secrets_not_in_env(facts: Facts) -> tuple[bool, str]:
    found = plain_env_secrets(facts.server)
    if found:
        return False, f"move {', '.join(found)} to secrets (write-only)"
    return True, "no credential-like variable in plain env"


def _rate_limited(facts: Facts) -> tuple[bool, str]:
    settings = facts.settings
    limits = {name: getattr(settings, f"gateway_rate_limit_{name}") for name in ("identity", "server", "tool")}
    set_ = [f"{name} {value}" for name, value in limits.items() if value]
    return bool(set_), ("gateway limits: " + ", ".join(set_)) if set_ else "no gateway rate limit set"


def _owner_set(facts: Facts) -> tuple[bool, str]:
    team = facts.server.spec.owner_team
    return bool(team), f"owned by '{team}'" if team else "owner_team is empty"


def _probes_and_resources(facts: Facts) -> tuple[bool, str]:
    deployment = next(obj for obj in manifests.render(facts.server.spec, manifests.options_from_settings())
                      if obj["kind"] == "Deployment")
    missing = [f"{container['name']}.{key}" for container in deployment["spec"]["template"]["spec"]["containers"]
               for key in ("livenessProbe", "readinessProbe", "resources")
               if not container.get(key) or key == "resources" and not {"requests", "limits"} <= set(container[key])]
    return not missing, f"missing {', '.join(missing)}" if missing else "liveness, readiness, requests and limits set"


def _rollback_target(facts: Facts) -> tuple[bool, str]:
    if facts.rollback_target is None:
        return False, f"revision {facts.server.revision} has no earlier revision to roll back to"
    return True, f"revision {facts.rollback_target} can be re-applied"


ITEMS: tuple[Item, ...] = (
    Item("auth-on", "Callers authenticate", "security", "FR-006, docs/entry-points.md", _auth_on),
    Item("sandbox-on", "Stdio children run sandboxed", "security", "docs/sandbox.md", _sandbox_on,
         frozenset({ServerKind.PACKAGE})),
    Item("secrets-not-in-env", "No secret in plain env", "security", "NFR-SEC-002, docs/secrets.md",
         _secrets_not_in_env, frozenset({ServerKind.PACKAGE, ServerKind.CONTAINER})),
    Item("rate-limit-set", "Rate limits set", "security", "FR-025", _rate_limited),
    Item("access-reviewed", "Access policy and shares reviewed", "security", "FR-006, FR-018"),
    Item("data-classified", "Data the server handles is classified", "compliance",
         "https://learn.microsoft.com/azure/cloud-adoption-framework/govern/policy-compliance/data-classification"),
    Item("licenses-reviewed", "Licenses of the server and its dependencies reviewed", "compliance",
         "https://opensource.org/licenses"),
    Item("owner-set", "Owner team set", "operations", "FR-018", _owner_set),
    Item("probes-and-resources", "Probes and resources set", "operations",
         "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/",
         _probes_and_resources, frozenset({ServerKind.CONTAINER})),
    Item("rollback-target", "A rollback target exists", "operations", "NFR-REL-002", _rollback_target),
    Item("runbook-reviewed", "On-call read the incident-response runbook", "operations",
         "NFR-OPS-001, GET /api/runbooks?role=sre&scenario=incident-response"),
)
BY_ID = {item.id: item for item in ITEMS}


class Mark(BaseModel):
    """One manual item set by a person."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=80)
    checked: bool
    note: str = Field(default="", max_length=1000)


class ChecklistPatch(BaseModel):
    """Body of `PATCH /api/servers/{name}/checklist`."""

    model_config = ConfigDict(extra="forbid")

    items: list[Mark] = Field(min_length=1, max_length=len(ITEMS))


@dataclass(frozen=True)
class Change:
    """One item whose state changed: an automatic flip or a manual mark."""

    item: str
    before: bool | None
    after: bool
    automatic: bool
    detail: str


def applicable(server: Server) -> list[Item]:
    """The items that apply to `server`'s kind."""
    return [item for item in ITEMS if server.spec.kind in item.kinds]


def facts_for(store: DocumentStore, server: Server, settings: Any) -> Facts:
    """Facts of `server`: the newest revision before its current one, if any."""
    earlier = store.query("revisions", partition_key=server.name, order_by="number", descending=True,
                          ranges={"number": (None, server.revision)}, limit=1) if server.revision > 1 else []
    return Facts(server, settings, earlier[0]["number"] if earlier else None)


def validate_marks(server: Server, patch: ChecklistPatch) -> None:
    """Raise BadRequestError (400) listing each mark of an unknown, automatic or
    not-applicable item."""
    kinds = {item.id for item in applicable(server)}
    errors = []
    for index, mark in enumerate(patch.items):
        item = BY_ID.get(mark.id)
        if item is None or mark.id not in kinds:
            errors.append({"field": f"items.{index}.id", "message": f"no item '{mark.id}' for a "
                                                                   f"{server.spec.kind.value} server"})
        elif item.check is not None:
            errors.append({"field": f"items.{index}.id", "message": f"'{mark.id}' is automatic: "
                                                                   "the platform sets it"})
    if errors:
        raise BadRequestError("checklist marks refused", errors=errors)


def _apply(doc: dict[str, Any], facts: Facts, marks: list[Mark], actor: str) -> list[Change]:
    """Re-evaluate automatic items and apply `marks` to `doc` in place; return the changes."""
    now = utc_now().isoformat()
    changes: list[Change] = []
    items = doc.setdefault("items", {})
    for item in applicable(facts.server):
        if item.check is None:
            continue
        checked, detail = item.check(facts)
        before = items.get(item.id, {}).get("checked")
        if before != checked or items.get(item.id, {}).get("detail") != detail:
            items[item.id] = {"checked": checked, "detail": detail, "by": "mcpaas-platform", "at": now}
        if before != checked:
            changes.append(Change(item.id, before, checked, True, detail))
    for mark in marks:
        before = items.get(mark.id, {}).get("checked")
        items[mark.id] = {"checked": mark.checked, "note": mark.note, "by": actor, "at": now}
        if before != mark.checked:
            changes.append(Change(mark.id, before, mark.checked, False, mark.note))
    return changes


def sync(store: DocumentStore, facts: Facts, marks: Sequence[Mark] = (), actor: str = "",
         attempts: int = 3) -> tuple[dict[str, Any], list[Change]]:
    """Bring the stored checklist of `facts.server` up to date and apply `marks` by `actor`.

    Returns (document, changes); the document is written only when something changed.
    Raises ConflictError (409) after `attempts` lost races.
    """
    name = facts.server.name
    for _ in range(attempts):
        try:
            stored = store.read("checklists", name, name)
        except NotFoundError:
            stored = None
        # a deep copy: _apply edits nested item dicts, and `stored` must stay the "before"
        doc = copy.deepcopy({key: value for key, value in (stored or {"id": name, "server": name}).items()
                             if key != "_etag"})
        changes = _apply(doc, facts, list(marks), actor)
        if stored is not None and doc == {key: value for key, value in stored.items() if key != "_etag"}:
            return doc, changes
        doc["updated_at"] = utc_now().isoformat()
        try:
            if stored is None:
                store.create("checklists", doc)
            else:
                store.replace("checklists", doc, if_match=stored["_etag"])
            return doc, changes
        except ConflictError:
            continue  # someone else wrote it: re-read and re-evaluate
    raise ConflictError(f"checklist of '{name}' changed concurrently; retry")


def view(server: Server, doc: dict[str, Any]) -> dict[str, Any]:
    """The API shape: every applicable item with its state, and the readiness score."""
    stored = doc.get("items", {})
    items = [{"id": item.id, "title": item.title, "category": item.category, "reference": item.reference,
              "automatic": item.check is not None, "checked": bool(stored.get(item.id, {}).get("checked")),
              **{key: stored[item.id][key] for key in ("detail", "note", "by", "at") if key in stored.get(item.id, {})}}
             for item in applicable(server)]
    checked = sum(item["checked"] for item in items)
    return {"server": server.name, "score": round(checked / len(items), 3), "checked": checked,
            "total": len(items), "updated_at": doc.get("updated_at"), "items": items}
