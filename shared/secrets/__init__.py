"""Secret store (NFR-SEC-002): adapter selection and resolving a server's secrets.

`create_secret_store(settings)` picks Azure Key Vault when `key_vault_url` is set, else
the embedded store under `settings.secrets_dir`; `resolve_env` turns a spec's `secrets`
into the environment variables a child (or a Kubernetes Secret) receives. The control
plane's side, moving write-only values into the store, is `shared.secrets.intake`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from shared.models import SecretSource
from shared.secrets.port import SECRET_NAME, SecretNotFoundError, SecretStore
from shared.settings import Settings, get_settings


def create_secret_store(settings: Settings) -> SecretStore:
    """The secret-store adapter for `settings`: Key Vault (``DefaultAzureCredential``,
    i.e. managed identity on Azure) when `key_vault_url` is set, else the embedded store;
    a package-server pod reads its mounted Secret (`secrets_mount_dir`, `shared.secrets.mounted`)."""
    if settings.secrets_mount_dir is not None:
        from shared.secrets.mounted import MountedSecretStore

        return MountedSecretStore(settings.secrets_mount_dir)
    if settings.key_vault_url:
        from azure.identity import DefaultAzureCredential  # the SDKs load only when chosen

        from shared.secrets.keyvault import KeyVaultSecretStore

        return KeyVaultSecretStore(settings.key_vault_url, DefaultAzureCredential())
    from shared.secrets.embedded import EmbeddedSecretStore

    return EmbeddedSecretStore(settings.secrets_dir)


def get_secret_store() -> SecretStore:
    """The secret store of the process-wide settings, opened once per store location (so
    a test that points `MCPAAS_DATA_DIR` elsewhere and clears `get_settings` gets its own)."""
    settings = get_settings()
    return _opened(settings.secrets_dir, settings.key_vault_url)


@lru_cache(maxsize=8)
def _opened(secrets_dir: Path, key_vault_url: str | None) -> SecretStore:
    return create_secret_store(get_settings())


def resolve_env(store: SecretStore, secrets: dict[str, SecretSource]) -> dict[str, str]:
    """Resolve a spec's `secrets` to ``{ENV_NAME: value}``.

    A `ref` is read from `store`; a `value` (a spec that has not been through the control
    plane, e.g. in a test rig) is used as given. Raises SecretNotFoundError naming the
    environment variable and the reference, never a value.
    """
    env: dict[str, str] = {}
    for env_name, source in secrets.items():
        if source.ref is None:
            env[env_name] = source.value.get_secret_value() if source.value is not None else ""
            continue
        try:
            env[env_name] = store.get(source.ref)
        except SecretNotFoundError as error:
            raise SecretNotFoundError(f"secret for {env_name} not found: {error}") from None
    return env


__all__ = ["SECRET_NAME", "SecretNotFoundError", "SecretStore", "create_secret_store", "get_secret_store",
           "resolve_env"]
