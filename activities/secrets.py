"""Activities on the secret store (NFR-SEC-002): Key Vault on Azure, the embedded store locally.

Values never pass through here: inputs and outputs are server names and secret names.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.models import OperationJob
from shared.secrets import get_secret_store
from shared.secrets.intake import delete_server_secrets
from shared.store import get_store

bp = df.Blueprint()


@bp.activity_trigger(input_name="job")
def delete_secrets(job: dict[str, Any]) -> list[str]:
    """Delete every version of every secret of the job's server; returns the secret names.

    Idempotent (deleting a missing secret is a no-op), so a retry or a second delete of a
    server left `Stopped` by a failure finishes the job.
    """
    op = OperationJob.model_validate(job)
    return delete_server_secrets(get_secret_store(), get_store(), op.name)
