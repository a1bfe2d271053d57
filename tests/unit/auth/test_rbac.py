"""The permission matrix, team ownership and shares (FR-006, FR-018)."""

from __future__ import annotations

import pytest

from shared.auth.principal import Principal, Role
from shared.auth.rbac import Permission, Share, authorize


def who(*roles: Role, groups=(), subject="u1", servers=None) -> Principal:
    return Principal(subject=subject, roles=frozenset(roles), groups=frozenset(groups),
                     servers=frozenset(servers) if servers is not None else None)


@pytest.mark.parametrize("role, permission, allowed", [
    (Role.READER, Permission.SERVER_READ, True),
    (Role.READER, Permission.SERVER_CREATE, False),
    (Role.DEVELOPER, Permission.AUDIT_READ, False),
    (Role.OPERATOR, Permission.AUDIT_READ, True),
    (Role.OPERATOR, Permission.SERVER_DELETE, True),
    (Role.OPERATOR, Permission.KEYS_MANAGE, False),
    (Role.ADMIN, Permission.KEYS_MANAGE, True),
])
def test_matrix_on_another_teams_server(role, permission, allowed):
    assert authorize(who(role), permission, server="s", owner_team="team-b").allowed is allowed


def test_developer_acts_on_own_team_only_unless_shared():
    dev = who(Role.DEVELOPER, groups=["team-a"])
    assert authorize(dev, Permission.SERVER_DELETE, server="s", owner_team="team-a").allowed
    denied = authorize(dev, Permission.SERVER_DELETE, server="s", owner_team="team-b")
    assert not denied.allowed and "server.delete" in denied.reason
    shares = [Share(kind="group", value="team-a", permissions=[Permission.SERVER_DELETE])]
    assert authorize(dev, Permission.SERVER_DELETE, server="s", owner_team="team-b", shares=shares).allowed
    user_share = [Share(kind="user", value="u1", permissions=[Permission.SERVER_UPDATE])]
    assert not authorize(dev, Permission.SERVER_DELETE, server="s", owner_team="team-b", shares=user_share).allowed


def test_developer_creates_for_own_team_or_unowned():
    dev = who(Role.DEVELOPER, groups=["team-a"])
    assert authorize(dev, Permission.SERVER_CREATE, owner_team="team-a").allowed
    assert authorize(dev, Permission.SERVER_CREATE, owner_team="").allowed
    assert not authorize(dev, Permission.SERVER_CREATE, owner_team="team-b").allowed


def test_server_scoped_credentials_are_denied_elsewhere():
    key = who(Role.ADMIN, servers=["echo"])
    assert authorize(key, Permission.SERVER_UPDATE, server="echo").allowed
    assert not authorize(key, Permission.SERVER_UPDATE, server="time").allowed
