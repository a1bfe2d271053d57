"""The control plane's APIM restore functions over a `FakeApim`, for devhost (in process
or as ``python -m devhost --app tests.integration.apim.app:app``).

Only the blueprints the restore needs are registered (the APIM ones and the REST API for
`/api/operations/{id}`). As a subprocess the fake keeps its state in the JSON file named
by ``APIM_FAKE_STATE`` and, with ``APIM_FAKE_HANG`` (``fragment=release-file``), blocks
the first matching write, so a test can kill devhost in the middle of a restore.
"""

from __future__ import annotations

import os
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from activities import apim
from activities.apim import bp as apim_activities
from orchestrators.apim_restore import bp as apim_restore
from tests.fakes.apim import FakeApim, fake_connect
from triggers.apim import bp as apim_triggers
from triggers.http_api import bp as http_api

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (apim_triggers, apim_restore, apim_activities, http_api):
    app.register_functions(blueprint)

if os.environ.get("APIM_FAKE_STATE"):  # the subprocess case; in process the test wires the fake
    fragment, _, release = os.environ.get("APIM_FAKE_HANG", "").partition("=")
    apim.connect = fake_connect(FakeApim(state_path=Path(os.environ["APIM_FAKE_STATE"]),
                                         hang=(fragment, Path(release)) if fragment else None))
