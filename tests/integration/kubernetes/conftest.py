"""A fake Kubernetes API server and settings pointing the activities at it."""

from __future__ import annotations

import pytest

from shared.settings import get_settings
from shared.store import get_store
from tests.fakes.kube_api import start_fake_kube


@pytest.fixture
def fake_kube(tmp_path, monkeypatch):
    """A running fake cluster; MCPAAS_KUBECONFIG and a fresh data dir point at it."""
    running = start_fake_kube(tmp_path)
    monkeypatch.setenv("MCPAAS_KUBECONFIG", str(running.kubeconfig))
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    get_store.cache_clear()
    try:
        yield running
    finally:
        running.stop()
        get_settings.cache_clear()
        get_store.cache_clear()
