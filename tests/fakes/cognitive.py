"""Azure OpenAI / AI Foundry behind an azure-core transport, for the real
`azure-mgmt-cognitiveservices` and `azure-monitor-query` clients (quota advisories).

`FakeCognitive` answers what `activities.quota.azure_usage` asks ARM: the account
(`GET .../accounts/{name}`: its location), its deployments (`GET .../deployments`: SKU
capacity and `rateLimits`) and the Azure Monitor metrics API
(`GET {account}/providers/Microsoft.Insights/metrics`, api-version 2018-01-01: one
timeseries per `ModelDeploymentName` value). `per_minute[(deployment, metric)]` is the
total each one-minute point reports; `throttle` answers the next requests 429 with
`Retry-After`. Every request must carry the credential's bearer token.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.rest._http_response_impl import HttpResponseImpl

from tests.fakes.transport import FakeTransport, error

ACCOUNT = ("/subscriptions/sub-1/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/"
           "accounts/oai-prod")


def deployment(name: str, capacity: int, tokens_per_minute: int | None = None, requests_per_minute: int | None = None,
               renewal_period: int = 60) -> dict[str, Any]:
    """A deployment as ARM lists it: Standard SKU of `capacity` (thousands of TPM) and,
    when given, rate-limit rules over `renewal_period` seconds."""
    rules = []
    if tokens_per_minute is not None:
        rules.append({"key": "token", "renewalPeriod": renewal_period,
                      "count": tokens_per_minute * renewal_period / 60})
    if requests_per_minute is not None:
        rules.append({"key": "request", "renewalPeriod": renewal_period,
                      "count": requests_per_minute * renewal_period / 60})
    return {"id": f"{ACCOUNT}/deployments/{name}", "name": name,
            "type": "Microsoft.CognitiveServices/accounts/deployments",
            "sku": {"name": "Standard", "capacity": capacity},
            "properties": {"model": {"format": "OpenAI", "name": name, "version": "1"},
                           "provisioningState": "Succeeded", "rateLimits": rules}}


class FakeCognitive(FakeTransport):
    """The fake; `requests` lists (method, path, query) of every request served."""

    def __init__(self, deployments: list[dict[str, Any]], per_minute: dict[tuple[str, str], float],
                 location: str = "swedencentral") -> None:
        super().__init__()
        self.deployments, self.per_minute, self.location = deployments, per_minute, location
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        url = urlsplit(request.url)
        path, query = url.path.rstrip("/"), parse_qs(url.query)
        self.requests.append((request.method, path, query))
        assert request.headers.get("Authorization") == "Bearer fake-arm-token", "unsigned request"
        throttled = self.throttling(request, retry_after="0.01")
        if throttled:
            return throttled
        if path.lower() == ACCOUNT.lower():
            return self.answer(request, 200, {"id": ACCOUNT, "name": "oai-prod", "location": self.location,
                                               "kind": "OpenAI", "properties": {}})
        if path.lower() == f"{ACCOUNT}/deployments".lower():
            return self.answer(request, 200, {"value": self.deployments})
        if path.lower() == f"{ACCOUNT}/providers/microsoft.insights/metrics".lower():
            return self.answer(request, 200, self._metrics(query))
        return self.answer(request, *error(404, "NotFound", path))

    def _metrics(self, query: dict[str, list[str]]) -> dict[str, Any]:
        assert query["aggregation"] == ["Total"] and query["$filter"] == ["ModelDeploymentName eq '*'"], query
        start_text, end_text = query["timespan"][0].split("/")
        start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
        step = timedelta(minutes=1)
        assert query["interval"] == ["PT1M"], query
        metrics = []
        for metric in query["metricnames"][0].split(","):
            series = []
            for name in {d["name"] for d in self.deployments}:
                points, at = [], start
                while at < end:
                    points.append({"timeStamp": at.isoformat(), "total": self.per_minute.get((name, metric), 0)})
                    at += step
                series.append({"metadatavalues": [{"name": {"value": "modeldeploymentname",
                                                            "localizedValue": "ModelDeploymentName"},
                                                   "value": name}], "data": points})
            metrics.append({"id": f"{ACCOUNT}/providers/Microsoft.Insights/metrics/{metric}",
                            "type": "Microsoft.Insights/metrics", "name": {"value": metric, "localizedValue": metric},
                            "unit": "Count", "timeseries": series})
        return {"cost": 0, "timespan": query["timespan"][0], "interval": "PT1M", "value": metrics,
                "namespace": "Microsoft.CognitiveServices/accounts", "resourceregion": self.location}
