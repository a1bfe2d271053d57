"""Who counts as the control plane (the only caller of the reserved deploy-probe scope)."""

from __future__ import annotations

from shared.auth.principal import AuthMode, Principal, Role
from shared.auth.service import SERVICE_SUBJECT, is_control_plane
from shared.settings import Settings

ADMIN = frozenset({Role.ADMIN})


def test_local_mode_recognises_the_service_subject_only():
    settings = Settings(auth_mode=AuthMode.LOCAL)
    assert is_control_plane(Principal(subject=SERVICE_SUBJECT, roles=ADMIN), settings)
    assert not is_control_plane(Principal(subject="alice", roles=ADMIN), settings)
    assert not is_control_plane(Principal(subject=SERVICE_SUBJECT, roles=frozenset({Role.READER})), settings)
    assert not is_control_plane(Principal(subject=SERVICE_SUBJECT, roles=ADMIN, kind="api_key"), settings)


def test_entra_mode_recognises_the_configured_managed_identity():
    settings = Settings(auth_mode=AuthMode.ENTRA, control_plane_principals="oid-1,oid-2")
    assert settings.control_plane_principals == ["oid-1", "oid-2"]
    assert is_control_plane(Principal(subject="oid-2", roles=ADMIN), settings)
    assert not is_control_plane(Principal(subject=SERVICE_SUBJECT, roles=ADMIN), settings)
    assert not is_control_plane(Principal(subject="oid-3", roles=ADMIN), settings)
