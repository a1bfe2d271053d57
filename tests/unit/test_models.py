"""ServerSpec validation (DESIGN.md contract) and the revision diff."""

import pytest
from pydantic import ValidationError

from shared.models import ServerSpec, spec_diff


def fields_of(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in error.errors()}


def test_package_spec_is_accepted_with_defaults():
    spec = ServerSpec.model_validate({"name": "time", "kind": "package", "package": {"command": "mcp-server-time"}})
    assert spec.package.args == [] and spec.enabled is True


@pytest.mark.parametrize("name", ["Time", "-a", "a-", "a_b", "a" * 64, "", "a.b", "abc\n"])
def test_name_must_be_a_dns1123_label(name):
    with pytest.raises(ValidationError) as info:
        ServerSpec.model_validate({"name": name, "kind": "remote", "remote": {"url": "http://x"}})
    assert fields_of(info.value) == {"name"}


@pytest.mark.parametrize("body, field", [
    ({"name": "a", "kind": "package"}, "package"),
    ({"name": "a", "kind": "package", "package": {}}, "package.command"),
    ({"name": "a", "kind": "package", "package": {"command": "  "}}, "package.command"),
    ({"name": "a", "kind": "package", "package": {"command": "x", "env": {"1BAD": "v"}}}, "package.env"),
    ({"name": "a", "kind": "remote", "remote": {"url": "http://x"}, "package": {"command": "x"}}, "package"),
    ({"name": "a", "kind": "lambda"}, "kind"),
    ({"name": "a", "kind": "remote", "remote": {"url": "ftp://x"}}, "remote.url"),
    ({"name": "a", "kind": "remote", "remote": {"url": "http://x"}, "colour": "red"}, "colour"),
])
def test_invalid_specs_name_the_failing_field(body, field):
    with pytest.raises(ValidationError) as info:
        ServerSpec.model_validate(body)
    assert field in fields_of(info.value)


def test_diff_lists_changed_leaves_only():
    before = {"name": "a", "package": {"command": "x", "args": ["1"]}}
    after = {"name": "a", "package": {"command": "x", "args": ["2"]}}
    assert spec_diff(before, after) == {"package.args": {"from": ["1"], "to": ["2"]}}


def test_first_revision_diff_lists_every_leaf_from_none():
    assert spec_diff(None, {"name": "a", "package": {"command": "x"}}) == {
        "name": {"from": None, "to": "a"}, "package.command": {"from": None, "to": "x"}}
