"""HTTP trigger of code bundle uploads: `POST /api/bundles` (issue 13 item 2, docs/bundles.md).

Thin by rule: authenticate, authorize, bound the body, check the archive
(`shared.bundles.check_archive`), store it in the artifact store under its digest, answer.
Content-addressed, so uploading the same bytes twice stores one artifact and answers the
same digest; nothing is stored when a check fails.
"""

from __future__ import annotations

import asyncio

import azure.durable_functions as df
import azure.functions as func

from shared import bundles
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.blobs import ArtifactStore, open_artifacts
from shared.errors import PayloadTooLargeError
from shared.settings import get_settings
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check, record_decision

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


def _store(artifacts: ArtifactStore, data: bytes, summary: bundles.Summary) -> bool:
    """Put the bundle unless it is stored already; True when it was new."""
    name = bundles.artifact_name(summary.digest)
    if name in artifacts.list(name):
        return False
    artifacts.put(name, data, content_type=bundles.MEDIA_TYPE)
    return True


@bp.route(route="bundles", methods=["POST"])
@problem_handler
@authenticated
async def upload_bundle(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`POST /api/bundles` (body: the `tar.gz` bytes) → `{"bundle": "sha256:<hex>", "size": N,
    "files": n}`, 201 when stored now, 200 when that digest was stored already.

    Who may create servers may upload (`server.create`: Developers and up; 403 otherwise).
    413 above `MCPAAS_BUNDLE_MAX_BYTES`; 400 problem+json naming the entry for an archive
    `shared.bundles` refuses (not gzip/tar, links, devices, absolute or `..` paths, too
    many files, too large unpacked).
    """
    check(principal, Permission.SERVER_CREATE, entity="bundles")
    settings = get_settings()
    limits = bundles.BundleLimits.from_settings(settings)
    data = req.get_body() or b""
    if len(data) > limits.max_bytes:
        raise PayloadTooLargeError(
            f"bundle is {len(data)} bytes; the limit is {limits.max_bytes} (MCPAAS_BUNDLE_MAX_BYTES)",
            errors=[{"field": "(body)", "message": f"larger than {limits.max_bytes} bytes"}])
    # decompressing up to the unpacked limit is CPU work: off the event loop
    summary = await asyncio.to_thread(bundles.check_archive, data, limits)
    created = await asyncio.to_thread(_store, open_artifacts(settings), data, summary)
    record_decision(principal, "bundle.upload", "bundles", "succeeded",
                    f"{summary.digest}: {summary.size} bytes, {summary.files} entries"
                    + ("" if created else " (stored already)"))
    return json_response({"bundle": summary.digest, "size": summary.size, "files": summary.files},
                         status=201 if created else 200)
