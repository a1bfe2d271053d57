"""Access policies are compiled once per server document, and a changed policy (a new
revision read from the store) takes effect on its first request (issue 10, guard cost)."""

from __future__ import annotations

from gateway.access.policy import compiled, may_use, tool_allowed
from shared.auth.principal import Principal, Role
from shared.models import AccessPolicy, PackageSource, Server, ServerSpec

READER = Principal(subject="rita", roles=frozenset({Role.READER}))


def revision(n: int, access: AccessPolicy) -> ServerSpec:
    """The spec as the registry builds it from a store read: a new object each time."""
    spec = ServerSpec(name="echo", kind="package", package=PackageSource(command="python3"), access=access)
    return Server.model_validate({"name": "echo", "spec": spec.model_dump(), "revision": n}).spec


def test_a_policy_is_compiled_once_per_spec_object():
    spec = revision(1, AccessPolicy(roles=[Role.READER]))
    assert compiled(spec) is compiled(spec)


def test_a_changed_policy_takes_effect_on_the_new_revision():
    first = revision(1, AccessPolicy(roles=[Role.READER], tools={"add": [Role.READER]}))
    assert may_use(READER, first).allowed and tool_allowed(READER, first, "add")
    second = revision(2, AccessPolicy(roles=[Role.ADMIN], tools={"add": [Role.ADMIN]}))
    assert not may_use(READER, second).allowed and not tool_allowed(READER, second, "add")
    reopened = revision(3, AccessPolicy())
    assert may_use(READER, reopened).allowed and tool_allowed(READER, reopened, "add")
