"""Cosmos-specific behaviour beyond the shared contract: selection, setup, documentation."""

from __future__ import annotations

import threading
import uuid

import pytest

from shared.settings import Settings
from shared.store import open_store
from shared.store import cosmos as cosmos_module
from shared.store.cosmos import CosmosDocumentStore
from shared.store.port import CONTAINERS


def test_module_docstring_names_the_partition_key_of_every_container():
    for container, field in CONTAINERS.items():
        assert f"| `{container}`" in cosmos_module.__doc__, container
        assert f"`/{field}`" in cosmos_module.__doc__, (container, field)


def test_open_store_selects_cosmos_and_reopens_the_same_database(cosmos_emulator, tmp_path):
    env = cosmos_emulator.env(f"select-{uuid.uuid4().hex[:8]}")
    settings = Settings(data_dir=tmp_path, store=env["MCPAAS_STORE"],
                        cosmos_endpoint=env["MCPAAS_COSMOS_ENDPOINT"], cosmos_key=env["MCPAAS_COSMOS_KEY"],
                        cosmos_verify_tls=False, cosmos_database=env["MCPAAS_COSMOS_DATABASE"])
    first = open_store(settings)
    assert isinstance(first, CosmosDocumentStore)
    created = first.create("servers", {"id": "echo", "status": "Pending"})
    assert open_store(settings).read("servers", "echo", "echo") == created  # containers kept
    assert not (tmp_path / "store.sqlite").exists()


def test_settings_read_cosmos_from_env_and_never_show_the_key(monkeypatch):
    monkeypatch.setenv("MCPAAS_STORE", "cosmos")
    monkeypatch.setenv("MCPAAS_COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/")
    monkeypatch.setenv("MCPAAS_COSMOS_KEY", "c2VjcmV0LWtleQ==")
    monkeypatch.setenv("MCPAAS_COSMOS_VERIFY_TLS", "false")
    settings = Settings()
    assert (settings.store, settings.cosmos_database, settings.cosmos_verify_tls) == ("cosmos", "mcpaas", False)
    assert settings.cosmos_key.get_secret_value() == "c2VjcmV0LWtleQ=="
    assert "c2VjcmV0LWtleQ==" not in repr(settings) and "c2VjcmV0LWtleQ==" not in str(settings.model_dump())


def test_cosmos_without_endpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="MCPAAS_COSMOS_ENDPOINT"):
        open_store(Settings(data_dir=tmp_path, store="cosmos"))


def test_ids_cosmos_cannot_address_are_rejected_before_writing(cosmos_emulator):
    store = CosmosDocumentStore(cosmos_emulator.endpoint, f"ids-{uuid.uuid4().hex[:8]}",
                                key=cosmos_emulator.key, verify_tls=False)
    for bad in ("a/b", "a?b", "a#b", "a\\b"):
        with pytest.raises(ValueError, match="must not contain"):
            store.create("servers", {"id": bad})
    assert store.query("servers") == []


def test_processes_opening_a_new_database_at_once_all_succeed(cosmos_emulator):
    database = f"race-{uuid.uuid4().hex[:8]}"
    opened, errors = [], []

    def open_one() -> None:
        try:
            opened.append(CosmosDocumentStore(cosmos_emulator.endpoint, database,
                                              key=cosmos_emulator.key, verify_tls=False))
        except Exception as error:  # noqa: BLE001  (asserted below)
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 6
    opened[0].create("servers", {"id": "a"})
    assert [d["id"] for d in opened[5].query("servers")] == ["a"]
