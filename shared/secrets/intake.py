"""Sealing a server spec: write-only secret values go into the secret store (NFR-SEC-002).

Every entry point that accepts a spec (REST create/update, Service Bus, push-to-deploy)
goes through `triggers.operations.start_deploy`, which calls `seal_spec` before the spec
is stored, diffed, audited or handed to an orchestration: each `secrets` entry with a
`value` is put into the store under the server's own secret name for that variable and
replaced by the reference the store returns. Nothing downstream ever sees a value.
"""

from __future__ import annotations

import hashlib

from shared.errors import NotFoundError, UnprocessableError
from shared.models import SecretSource, ServerSpec
from shared.secrets.port import SecretNotFoundError, SecretStore
from shared.store.port import DocumentStore

_PREFIX = "mcpaas-"
_DIGEST_CHARS = 12  # 48 bits of sha256: tells apart names the dash mapping would merge
_MAX_NAME = 127  # Key Vault's limit on secret names


def secret_name(server: str, env_name: str) -> str:
    """The secret-store name of variable `env_name` of `server`:
    ``mcpaas-{server}-{ENV-NAME}-{digest}`` within Key Vault's ``[0-9a-zA-Z-]{1,127}``.

    `_` becomes `-` for readability; the digest of the exact (server, variable) pair keeps
    names apart that would otherwise meet (``a``/``B_C`` vs ``a-b``/``C``, and Key Vault
    comparing names without case).
    """
    digest = hashlib.sha256(f"{server}\0{env_name}".encode()).hexdigest()[:_DIGEST_CHARS]
    room = _MAX_NAME - len(_PREFIX) - len(server) - len(digest) - 2
    return f"{_PREFIX}{server}-{env_name.replace('_', '-')[:room]}-{digest}"


def secret_sources(spec: ServerSpec | dict) -> dict[str, SecretSource]:
    """The `secrets` of a spec (model or JSON) of any kind; empty for `remote`."""
    model = spec if isinstance(spec, ServerSpec) else ServerSpec.model_validate(spec)
    source = model.package or model.container
    return dict(source.secrets) if source is not None else {}


def _server_specs(documents: DocumentStore, name: str) -> list[dict]:
    """The current spec of server `name` and the spec of each of its revisions (JSON)."""
    try:
        specs = [documents.read("servers", name, name)["spec"]]
    except NotFoundError:
        return []
    return specs + [doc["spec"] for doc in documents.query("revisions", partition_key=name)]


def issued_references(documents: DocumentStore, name: str) -> set[str]:
    """Every reference the platform has issued to server `name` and still keeps: those of its
    current spec and of each of its revisions (none for a server that does not exist)."""
    return {source.ref for spec in _server_specs(documents, name)
            for source in secret_sources(spec).values() if source.ref}


def _field(spec: ServerSpec, env_name: str) -> str:
    return f"{spec.kind.value}.secrets.{env_name}"


def _check_reference(store: SecretStore, spec: ServerSpec, env_name: str, ref: str, issued: set[str]) -> str | None:
    """Why a caller-given `ref` may not be used by this server's variable, or None if it may."""
    try:
        owner = store.name_of(ref)
    except SecretNotFoundError:
        return "not a reference of this platform's secret store"
    if owner != secret_name(spec.name, env_name) or ref not in issued:
        return "not a reference issued to this server and variable; send a value instead"
    try:
        store.get(ref)
    except SecretNotFoundError:
        return "no secret behind this reference any more; send a value instead"
    return None


def seal_spec(spec: ServerSpec, store: SecretStore, documents: DocumentStore) -> ServerSpec:
    """Return `spec` with every secret `value` stored in `store` and replaced by its `ref`.

    A `ref` the caller sends back must be one the platform issued to this server for this
    variable (its current spec or a revision: a caller cannot point its server at another
    server's secret) and must still resolve. All references are checked before any value
    is written, so a refused spec leaves the store unchanged.
    Raises UnprocessableError (422) listing each refused reference by field, never a value.
    """
    sources = secret_sources(spec)
    if not sources:
        return spec
    issued = issued_references(documents, spec.name)
    errors = [{"field": _field(spec, env_name), "message": reason}
              for env_name, source in sources.items() if source.ref is not None
              for reason in [_check_reference(store, spec, env_name, source.ref, issued)] if reason]
    if errors:
        raise UnprocessableError("secret references refused", errors=errors)
    sealed = {env_name: source if source.value is None else
              SecretSource(ref=store.put(secret_name(spec.name, env_name), source.value.get_secret_value()))
              for env_name, source in sources.items()}
    section = "package" if spec.package is not None else "container"
    updated = getattr(spec, section).model_copy(update={"secrets": sealed})
    return spec.model_copy(update={section: updated})


def delete_server_secrets(store: SecretStore, documents: DocumentStore, name: str) -> list[str]:
    """Delete every version of every secret of server `name` (the variables of its current
    spec and of all its revisions); idempotent. Returns the deleted secret names, sorted.

    Call before the server's documents are removed: they say which names exist.
    """
    names = sorted({secret_name(name, env_name) for spec in _server_specs(documents, name)
                    for env_name in secret_sources(spec)})
    for secret in names:
        store.delete(secret)
    return names
