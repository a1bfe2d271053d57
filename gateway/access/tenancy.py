"""Parameter isolation and tenancy of `package` servers (FR-019, FR-023, NFR-SEC-005).

A server with a `spec.tenancy` declares scope parameters (e.g. ``project_id``). The
caller's bound values come from its credential: the token claim ``mcpaas_scopes``
(``{"project_id": ["p1", "p2"]}``; minted by `mcpaas login` or set by Entra claims
mapping) or the API key's `scopes`. Which of its values a request acts in:

- `shared` tenancy (endpoint `/servers/{name}/mcp`): the value named by the request
  header ``MCPaaS-Scope: project_id=p1[, other=v]``, or the caller's only value when it
  holds exactly one. The session's own child starts with ``PROJECT_ID=p1`` in its
  environment, so the session acts only within that project.
- `dedicated` tenancy (endpoint `/servers/{name}/tenants/{value}/mcp`): one server
  instance per value, named ``{name}.{value}`` inside the gateway (own sessions, own
  working directory, own shared child), also started with ``PROJECT_ID=value``.

A missing value (the caller holds none, or several and named none) or a foreign one
(not among the caller's) is refused with `ScopeRefusedError` (403), which the gateway
audits. A server without tenancy ignores all of this.

The deploy probe: the control plane's service token binds no scope value, so it names
the reserved value `shared.auth.service.PROBE_SCOPE_VALUE` (header, and for `dedicated`
the tenant path). Only the control plane's principal may use it; anyone else naming or
holding it is refused. Chosen over starting the probe's child without scope values,
which would run tenant code unscoped; and over probing a configured real tenant, which
would put the control plane inside that tenant's data.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from shared.asgi import header
from shared.auth.principal import Principal
from shared.auth.service import PROBE_SCOPE_VALUE, is_control_plane
from shared.models import Server, Tenancy, TenancyModel

SCOPE_HEADER = "mcpaas-scope"
TENANT_PARAM = "tenant"
# Separator of dedicated instance names: not valid in a DNS-1123 label, so an instance
# name can never collide with another server's name.
INSTANCE_SEPARATOR = "."
# Security: the value becomes a directory name and an environment value; a strict
# alphabet stops path traversal (`../`) and variable-injection tricks.
SCOPE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class ScopeRefusedError(Exception):
    """The request's scope value is missing or foreign; `str()` says which (no secrets)."""


def env_name(param: str) -> str:
    """The child's environment variable carrying scope parameter `param`."""
    return param.upper()


def requested(request: Request) -> dict[str, str]:
    """`param=value` pairs of the `MCPaaS-Scope` header (malformed items ignored)."""
    pairs: dict[str, str] = {}
    for item in header(request, SCOPE_HEADER, "").split(","):
        param, sep, value = item.partition("=")
        if sep and param.strip():
            pairs[param.strip()] = value.strip()
    return pairs


def _value(principal: Principal, param: str, wanted: str | None) -> str:
    held = principal.scopes.get(param, frozenset())
    if wanted is None:
        if len(held) != 1:
            raise ScopeRefusedError(f"missing scope value for '{param}'"
                                    + (": name one in the MCPaaS-Scope header" if held else ""))
        wanted = next(iter(held))
    if wanted == PROBE_SCOPE_VALUE:
        # Security: the reserved probe value is never a real tenant's, so the exemption
        # cannot put anyone (the control plane included) inside a real project; and only
        # the control plane may use it, so no caller gets a session without a scope of
        # its own by naming it.
        if is_control_plane(principal):
            return wanted
        raise ScopeRefusedError(f"scope value for '{param}' is reserved for the deploy probe")
    if not SCOPE_VALUE.match(wanted) or wanted not in held:
        raise ScopeRefusedError(f"scope value for '{param}' is not one the caller holds")
    return wanted


def bind(server: Server, principal: Principal, request: Request) -> Server:
    """The server as this request may use it: scope values in the child's environment,
    and for `dedicated` the per-value instance. Unchanged without tenancy.

    Raises ScopeRefusedError for a missing or foreign value, and for a tenant endpoint
    of a server that is not `dedicated` (or the plain endpoint of one that is).
    """
    tenancy: Tenancy | None = server.spec.tenancy
    tenant = request.path_params.get(TENANT_PARAM)
    if tenancy is None or tenancy.model != TenancyModel.DEDICATED:
        if tenant is not None:
            raise ScopeRefusedError(f"server '{server.name}' has no per-tenant endpoints")
        if tenancy is None:
            return server
    elif tenant is None:
        raise ScopeRefusedError(f"server '{server.name}' is dedicated: use "
                                f"/servers/{server.name}/tenants/<{tenancy.params[0]}>/mcp")
    wanted = requested(request)
    if tenant is not None:
        wanted[tenancy.params[0]] = tenant
    values = {param: _value(principal, param, wanted.get(param)) for param in tenancy.params}
    return _bound(server, values, tenant)


def _bound(server: Server, values: dict[str, str], tenant: str | None) -> Server:
    package = server.spec.package
    assert package is not None  # ServerSpec allows tenancy on package servers only
    # Scope values override `package.env`: a spec cannot pin a tenant for its callers.
    env = {**package.env, **{env_name(param): value for param, value in values.items()}}
    spec = server.spec.model_copy(update={"package": package.model_copy(update={"env": env})})
    name = f"{server.name}{INSTANCE_SEPARATOR}{tenant}" if tenant is not None else server.name
    return server.model_copy(update={"name": name, "spec": spec})


def is_instance_of(session_server: str, server: str) -> bool:
    """True when `session_server` is `server` itself or one of its dedicated instances."""
    return session_server == server or session_server.startswith(server + INSTANCE_SEPARATOR)
