"""What the embedded secret store adds to the contract: encryption at rest, private file
modes, ciphertexts bound to their name and version, and one key for many processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat

import pytest

from shared.secrets.embedded import EmbeddedSecretStore
from shared.secrets.port import SecretNotFoundError

VALUE = "correct horse battery staple"


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_hold_no_plaintext(tmp_path):
    directory = tmp_path / "secrets"
    store = EmbeddedSecretStore(directory)
    reference = store.put("mcpaas-echo-TOKEN", VALUE)
    assert store.get(reference) == VALUE
    assert mode(directory) == 0o700
    files = [path for path in directory.iterdir() if path.is_file()]
    assert {path.name for path in files} >= {"key", "secrets.sqlite"}
    for path in files:
        assert mode(path) == 0o600, path
        assert VALUE.encode() not in path.read_bytes(), path
    assert len((directory / "key").read_bytes()) == 32  # AES-256


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(tmp_path):
    store = EmbeddedSecretStore(tmp_path)
    mine = store.put("mcpaas-mine", "mine")
    theirs = store.put("mcpaas-theirs", "theirs")
    with sqlite3.connect(tmp_path / "secrets.sqlite") as db:
        nonce, ciphertext = db.execute("SELECT nonce, ciphertext FROM secrets WHERE name = 'mcpaas-theirs'").fetchone()
        db.execute("UPDATE secrets SET nonce = ?, ciphertext = ? WHERE name = 'mcpaas-mine'", (nonce, ciphertext))
    with pytest.raises(SecretNotFoundError, match="failed authentication"):
        store.get(mine)
    assert store.get(theirs) == "theirs"


def test_a_tampered_ciphertext_does_not_decrypt(tmp_path):
    store = EmbeddedSecretStore(tmp_path)
    reference = store.put("mcpaas-x", "value")
    with sqlite3.connect(tmp_path / "secrets.sqlite") as db:
        db.execute("UPDATE secrets SET ciphertext = CAST(? AS BLOB)", (b"\x00" * 21,))
    with pytest.raises(SecretNotFoundError):
        store.get(reference)


def test_every_version_has_its_own_nonce(tmp_path):
    store = EmbeddedSecretStore(tmp_path)
    for _ in range(20):
        store.put("mcpaas-same", "same value")
    with sqlite3.connect(tmp_path / "secrets.sqlite") as db:
        nonces = [row[0] for row in db.execute("SELECT nonce FROM secrets")]
        ciphertexts = {row[0] for row in db.execute("SELECT ciphertext FROM secrets")}
    assert len(set(nonces)) == 20 and len(ciphertexts) == 20


def _open_and_put(args: tuple[str, int]) -> str:
    directory, index = args
    return EmbeddedSecretStore(directory).put(f"mcpaas-proc-{index}", f"value-{index}")


def test_processes_opening_a_new_store_at_once_share_one_key(tmp_path):
    # the gateway and the control plane open the same data dir from separate processes
    directory = str(tmp_path / "shared")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        references = pool.map(_open_and_put, [(directory, index) for index in range(8)])
    store = EmbeddedSecretStore(tmp_path / "shared")
    assert [store.get(reference) for reference in references] == [f"value-{i}" for i in range(8)]
    assert [p.name for p in (tmp_path / "shared").iterdir() if p.name.startswith(".key")] == []
