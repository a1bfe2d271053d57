"""Read-only secret store over a mounted Kubernetes Secret (issue 11 item 4).

A package-server pod gets its server's secrets as files: the Secret is mounted at
`MCPAAS_SECRETS_MOUNT_DIR`, one file per key, and the spec the pod serves names each
secret by that key (`ref` = the environment variable's name, see
`shared.manifests.pod_spec`). Files, not environment variables: the bridge process
itself never holds the values in its environment, only the child it starts does
(checkov CKV_K8S_35; https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod).
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.secrets.port import SecretNotFoundError

# a Secret key the renderer writes: an environment variable name, never a path
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


class MountedSecretStore:
    """`SecretStore` reading `<directory>/<reference>`; `put` and `delete` are refused
    (the control plane writes secrets, a pod only reads them)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, name: str, value: str) -> str:
        """Refused: raises PermissionError."""
        raise PermissionError("a mounted secret store is read-only")

    def delete(self, name: str) -> None:
        """Refused: raises PermissionError."""
        raise PermissionError("a mounted secret store is read-only")

    def name_of(self, reference: str) -> str:
        """The key a reference names; SecretNotFoundError for anything but a key."""
        if not _KEY.fullmatch(reference):
            raise SecretNotFoundError(f"not a mounted secret key: {reference[:40]!r}")
        return reference

    def get(self, reference: str) -> str:
        """The value of file `reference`; SecretNotFoundError when absent or not a key
        (so `../x` can never read outside the mount)."""
        try:
            return (self.directory / self.name_of(reference)).read_text()
        except (FileNotFoundError, IsADirectoryError):
            raise SecretNotFoundError(f"mounted secret {reference} not found") from None
