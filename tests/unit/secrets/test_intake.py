"""Sealing specs (NFR-SEC-002): values move into the secret store, only references stay,
and a caller can only hand back references the platform issued to that server."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from shared import servers
from shared.errors import UnprocessableError
from shared.models import ServerSpec
from shared.secrets.embedded import EmbeddedSecretStore
from shared.secrets.intake import delete_server_secrets, issued_references, seal_spec, secret_name
from shared.secrets.port import SECRET_NAME, SecretNotFoundError
from shared.store.sqlite import SQLiteDocumentStore


@pytest.fixture
def secrets(tmp_path):
    return EmbeddedSecretStore(tmp_path / "secrets")


@pytest.fixture
def documents(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def package(name: str = "echo", **secrets) -> ServerSpec:
    return ServerSpec.model_validate({"name": name, "kind": "package", "package": {
        "command": "mcp-server-echo", "env": {"LOG": "1"}, "secrets": secrets}})


def accept(documents, spec: ServerSpec, number: int = 1) -> None:
    """Store `spec` as server state and revision `number`, as the deploy path does."""
    if number == 1:
        servers.accept_create(documents, spec, f"op{number}")
    else:
        servers.accept_update(documents, spec, f"op{number}")
    servers.record_revision(documents, name=spec.name, number=number, spec=spec.model_dump(mode="json"),
                            actor="t", operation_id=f"op{number}")
    servers.finish_operation(documents, name=spec.name, operation_id=f"op{number}", succeeded=True, revision=number)


def test_secret_names_follow_key_vault_rules_and_never_collide():
    names = [secret_name("a", "B_C"), secret_name("a-b", "C"), secret_name("x", "TOKEN"), secret_name("x", "token"),
             secret_name("s" * 63, "V" * 200), secret_name("s" * 63, "V" * 199)]
    assert all(SECRET_NAME.match(name) for name in names)
    assert len({name.lower() for name in names}) == len(names)  # Key Vault ignores case
    assert secret_name("echo", "API_TOKEN").startswith("mcpaas-echo-API-TOKEN-")
    assert secret_name("echo", "API_TOKEN") == secret_name("echo", "API_TOKEN")


def test_values_are_stored_and_replaced_by_references(secrets, documents):
    spec = package(API_TOKEN={"value": "tok-123"}, OTHER={"value": "other-456"})
    sealed = seal_spec(spec, secrets, documents)
    refs = {env: source.ref for env, source in sealed.package.secrets.items()}
    assert all(source.value is None for source in sealed.package.secrets.values())
    assert secrets.get(refs["API_TOKEN"]) == "tok-123" and secrets.get(refs["OTHER"]) == "other-456"
    assert secrets.name_of(refs["API_TOKEN"]) == secret_name("echo", "API_TOKEN")
    dumped = json.dumps(sealed.model_dump(mode="json"))
    assert "tok-123" not in dumped and "other-456" not in dumped and "**********" not in dumped
    assert sealed.package.env == {"LOG": "1"} and sealed.package.command == "mcp-server-echo"


def test_container_specs_are_sealed_too(secrets, documents):
    spec = ServerSpec.model_validate({"name": "web", "kind": "container", "container": {
        "image": "ghcr.io/acme/web:1", "secrets": {"KEY": {"value": "container-secret"}}}})
    sealed = seal_spec(spec, secrets, documents)
    assert secrets.get(sealed.container.secrets["KEY"].ref) == "container-secret"


def test_specs_without_secrets_pass_unchanged(secrets, documents):
    spec = package()
    assert seal_spec(spec, secrets, documents) is spec


def test_issued_references_may_be_sent_back_and_a_new_value_is_a_new_version(secrets, documents):
    first = seal_spec(package(API_TOKEN={"value": "v1"}), secrets, documents)
    accept(documents, first)
    ref = first.package.secrets["API_TOKEN"].ref
    assert issued_references(documents, "echo") == {ref}
    # re-sending the spec as GET shows it keeps the reference (no rotation)
    again = seal_spec(package(API_TOKEN={"ref": ref}), secrets, documents)
    assert again.package.secrets["API_TOKEN"].ref == ref
    rotated = seal_spec(package(API_TOKEN={"value": "v2"}), secrets, documents)
    new_ref = rotated.package.secrets["API_TOKEN"].ref
    assert new_ref != ref and secrets.get(new_ref) == "v2" and secrets.get(ref) == "v1"


def refused(secrets, documents, spec: ServerSpec) -> list[dict]:
    with pytest.raises(UnprocessableError) as raised:
        seal_spec(spec, secrets, documents)
    assert raised.value.status == 422
    return raised.value.extensions["errors"]


def test_another_servers_reference_is_refused(secrets, documents):
    victim = seal_spec(package("victim", API_TOKEN={"value": "victim-secret"}), secrets, documents)
    accept(documents, victim)
    stolen = victim.package.secrets["API_TOKEN"].ref
    errors = refused(secrets, documents, package("thief", API_TOKEN={"ref": stolen}))
    assert errors == [{"field": "package.secrets.API_TOKEN",
                       "message": "not a reference issued to this server and variable; send a value instead"}]
    # nor under another variable of the same server
    assert refused(secrets, documents, package("victim", OTHER={"ref": stolen}))


def test_a_reference_to_a_previous_server_of_the_same_name_is_refused(secrets, documents):
    old = seal_spec(package(API_TOKEN={"value": "old-owner"}), secrets, documents)
    old_ref = old.package.secrets["API_TOKEN"].ref
    # the server was deleted (its documents are gone) but the version could still exist
    assert refused(secrets, documents, package(API_TOKEN={"ref": old_ref}))


@pytest.mark.parametrize("ref", ["plain", "mcpaas-secret://x", "https://v.vault.azure.net/secrets/a/" + "1" * 32])
def test_malformed_or_foreign_store_references_are_refused(secrets, documents, ref):
    errors = refused(secrets, documents, package(API_TOKEN={"ref": ref}))
    assert errors[0]["message"] == "not a reference of this platform's secret store"


def test_an_issued_reference_whose_secret_is_gone_is_refused(secrets, documents):
    spec = seal_spec(package(API_TOKEN={"value": "v"}), secrets, documents)
    accept(documents, spec)
    secrets.delete(secret_name("echo", "API_TOKEN"))
    errors = refused(secrets, documents, spec)
    assert "no secret behind this reference" in errors[0]["message"]


def test_a_refused_spec_writes_no_value(secrets, documents, tmp_path):
    spec = package(GOOD={"value": "never-stored"}, BAD={"ref": "mcpaas-secret://nope/" + "0" * 32})
    refused(secrets, documents, spec)
    with sqlite3.connect(tmp_path / "secrets" / "secrets.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM secrets").fetchone() == (0,)


def test_delete_server_secrets_removes_every_version_of_every_revision(secrets, documents):
    first = seal_spec(package(OLD_NAME={"value": "a"}), secrets, documents)
    accept(documents, first)
    second = seal_spec(package(NEW_NAME={"value": "b"}), secrets, documents)
    accept(documents, second, 2)
    refs = [first.package.secrets["OLD_NAME"].ref, second.package.secrets["NEW_NAME"].ref]
    deleted = delete_server_secrets(secrets, documents, "echo")
    assert deleted == sorted([secret_name("echo", "OLD_NAME"), secret_name("echo", "NEW_NAME")])
    for ref in refs:
        with pytest.raises(SecretNotFoundError):
            secrets.get(ref)
    assert delete_server_secrets(secrets, documents, "echo") == deleted  # idempotent
    assert delete_server_secrets(secrets, documents, "unknown") == []
    assert all(re.fullmatch(r"[0-9a-zA-Z-]+", name) for name in deleted)
