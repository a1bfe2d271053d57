"""Embedded secret store: versioned secrets encrypted at rest in a SQLite file (NFR-SEC-002).

Layout under `directory` (mode 0700): `key`, 32 random bytes (AES-256), mode 0600;
`secrets.sqlite`, mode 0600, one row per (name, version) holding a fresh 96-bit nonce and
the AES-GCM ciphertext (`cryptography`'s `AESGCM`). The associated data is
``name/version``, so a ciphertext copied onto another row fails authentication instead of
decrypting as the other secret. The gateway and the control plane open the same
directory from separate processes: the key is created once with an atomic link (the
loser of a race reads the winner's key) and SQLite (WAL) serialises writers.

References have the form ``mcpaas-secret://{name}/{version}`` (docs/secrets.md).
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.secrets.port import SECRET_NAME, SecretNotFoundError

SCHEME = "mcpaas-secret://"
_REFERENCE = re.compile(r"^mcpaas-secret://(?P<name>[0-9a-zA-Z-]{1,127})/(?P<version>[0-9a-f]{32})$")
_NONCE_BYTES = 12  # the GCM nonce size NIST SP 800-38D recommends

_SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (name, version)
)
"""


def parse_reference(reference: str) -> tuple[str, str]:
    """Split ``mcpaas-secret://{name}/{version}`` into (name, version).

    Raises SecretNotFoundError (naming the reference) for any other text.
    """
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise SecretNotFoundError(f"not an embedded secret reference: {reference[:200]!r}")
    return match["name"], match["version"]


def _create_private(path: Path, content: bytes) -> None:
    """Write `content` to `path` (mode 0600) atomically, unless `path` exists already."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # atomic and fails if another process created it first
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)


class EmbeddedSecretStore:
    """`SecretStore` on a local directory, encrypted at rest with AES-256-GCM.

    `directory` is created (mode 0700) with its key and database on first use.
    Raises SecretNotFoundError from `get` for an unknown or malformed reference and for
    a row that fails authentication (tampered or swapped ciphertext).
    """

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._directory, 0o700)
        key_path = self._directory / "key"
        if not key_path.exists():
            _create_private(key_path, AESGCM.generate_key(bit_length=256))
        self._aead = AESGCM(key_path.read_bytes())
        self._db = self._directory / "secrets.sqlite"
        if not self._db.exists():
            os.close(os.open(self._db, os.O_WRONLY | os.O_CREAT, 0o600))
        with closing(self._connect()) as db, db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")  # readers (the gateway) never block the writer
        return db

    def put(self, name: str, value: str) -> str:
        """Store `value` as a new version of `name`; returns its reference."""
        if not SECRET_NAME.fullmatch(name):
            raise ValueError(f"invalid secret name {name!r}: 1-127 characters of [0-9a-zA-Z-]")
        version = uuid.uuid4().hex
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, value.encode(), f"{name}/{version}".encode())
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO secrets (name, version, nonce, ciphertext) VALUES (?, ?, ?, ?)",
                       (name, version, nonce, ciphertext))
        return f"{SCHEME}{name}/{version}"

    def get(self, reference: str) -> str:
        """The value behind `reference`; SecretNotFoundError names the reference only."""
        name, version = parse_reference(reference)
        with closing(self._connect()) as db:
            row = db.execute("SELECT nonce, ciphertext FROM secrets WHERE name = ? AND version = ?",
                             (name, version)).fetchone()
        if row is None:
            raise SecretNotFoundError(f"no secret behind {reference}")
        try:
            return self._aead.decrypt(row[0], row[1], f"{name}/{version}".encode()).decode()
        except InvalidTag:
            raise SecretNotFoundError(f"secret behind {reference} failed authentication") from None

    def delete(self, name: str) -> None:
        """Remove every version of `name`; nothing happens when there is none."""
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM secrets WHERE name = ?", (name,))

    def name_of(self, reference: str) -> str:
        """The secret name `reference` points at; SecretNotFoundError if it is not one of ours."""
        return parse_reference(reference)[0]
