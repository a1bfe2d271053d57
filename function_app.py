"""The MCPaaS control plane as an Azure Functions app (Python v2 model, Durable Functions).

Deployed to Azure Functions as is; run locally by `devhost` (`python -m devhost`).
Every trigger, orchestrator and activity lives in a Blueprint registered here.
"""

import azure.durable_functions as df
import azure.functions as func

from activities.gateway import bp as gateway_activities
from activities.arm import bp as arm_activities
from activities.kubernetes import bp as kubernetes_activities
from activities.secrets import bp as secret_activities
from activities.store import bp as store_activities
from orchestrators.delete import bp as delete_orchestration
from orchestrators.deploy import bp as deploy_orchestration
from orchestrators.provision import bp as provision_orchestration
from orchestrators.rollback import bp as rollback_orchestration
from triggers.diagnostics import bp as diagnostics
from triggers.event_grid import bp as event_grid
from triggers.governance import bp as governance
from triggers.http_api import bp as http_api
from triggers.service_bus import bp as service_bus
from triggers.runbooks import bp as runbooks
from triggers.checklists import bp as checklists
from triggers.feedback import bp as feedback
from activities.apim import bp as apim_activities
from orchestrators.apim_restore import bp as apim_restore_orchestration
from triggers.apim import bp as apim_triggers
from activities.quota import bp as quota_activities
from orchestrators.quota_advisory import bp as quota_orchestration
from triggers.costs import bp as costs_triggers
from triggers.quota import bp as quota_triggers
from triggers.freshness import bp as freshness
from triggers.catalog import bp as catalog_triggers
from triggers.bundles import bp as bundle_triggers

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (http_api, service_bus, deploy_orchestration, delete_orchestration, store_activities,
                  gateway_activities):
    app.register_functions(blueprint)
for blueprint in (rollback_orchestration, provision_orchestration, kubernetes_activities, arm_activities,
                  governance):
    app.register_functions(blueprint)
for blueprint in (diagnostics, event_grid, secret_activities):
    app.register_functions(blueprint)
for blueprint in (runbooks, checklists, feedback):  # issue 14: guidance (FR-008..FR-012)
    app.register_functions(blueprint)
for blueprint in (apim_triggers, apim_restore_orchestration, apim_activities, freshness):  # issue 12
    app.register_functions(blueprint)
for blueprint in (costs_triggers, quota_triggers, quota_orchestration, quota_activities):  # issue 12: FR-026, FR-028
    app.register_functions(blueprint)
app.register_functions(catalog_triggers)  # issue 13: the server catalog (FR-007)
app.register_functions(bundle_triggers)  # issue 13 item 2: code bundles (docs/bundles.md)
