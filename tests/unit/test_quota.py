"""Quota advisories (issue 12 item 2, FR-028): the rule, the recommendation, embedded
usage from cost events, idempotent raise and clear on the real SQLite store (audit
events, webhook over real HTTP, its failure not fatal), and the Azure path through the
real `azure-mgmt-cognitiveservices` and `azure-monitor-query` clients over a fake
transport (tests/fakes/cognitive.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import HttpResponseError

from activities import quota as activities
from shared import quota
from shared.audit import record_id
from shared.settings import Settings
from shared.store import SQLiteDocumentStore
from tests.fakes.arm import FakeCredential
from tests.fakes.cognitive import ACCOUNT, FakeCognitive, deployment
from tests.webhook import webhook_receiver

AT = datetime(2026, 12, 1, 12, 0, 30, tzinfo=timezone.utc)
LIMITS = {"tokens_per_minute": 1000.0, "requests_per_minute": 100.0}


def usage(*tokens: float, requests: float = 0) -> quota.Usage:
    starts = quota.bucket_starts(AT, 60 * len(tokens), 60)
    return quota.Usage(deployment="gpt-4o", limits=LIMITS, buckets=[
        quota.Bucket(start=start, tokens_per_minute=t, requests_per_minute=requests)
        for start, t in zip(starts, tokens, strict=True)])


def test_buckets_are_complete_and_aligned():
    starts = quota.bucket_starts(AT, 300, 60)
    assert starts[0] == datetime(2026, 12, 1, 11, 55, tzinfo=timezone.utc) and len(starts) == 5
    assert starts[-1] + timedelta(seconds=60) <= AT
    assert quota.bucket_starts(AT + timedelta(seconds=29), 300, 60) == starts  # same minute, same buckets


@pytest.mark.parametrize(("tokens", "requests", "verdict"), [
    ((900, 850, 810), 0, "raise"),           # every bucket above 80% of the token limit
    ((100, 100, 100), 90, "raise"),          # requests alone
    ((900, 700, 900), 0, "hold"),            # one dip: not sustained, newest still high
    ((900, 900, 800), 0, "clear"),           # exactly 80% is not above
    ((0, 0, 0), 0, "clear"),
])
def test_assess_raises_only_when_sustained_and_clears_when_back(tokens, requests, verdict):
    assert quota.assess(usage(*tokens, requests=requests), 0.8, 3) == verdict


def test_an_incomplete_window_never_raises():
    assert quota.assess(usage(900, 900), 0.8, 3) == "hold"
    assert quota.assess(quota.Usage(deployment="x", limits=LIMITS), 0.8, 3) == "hold"


def test_recommendation_puts_the_peak_at_sixty_percent_in_quota_units():
    assert quota.recommend(usage(900, 1250, 1000, requests=90)) == {
        "tokens_per_minute": 3000, "requests_per_minute": 150}
    assert quota.recommend(usage(10, 10)) == {"tokens_per_minute": 1000, "requests_per_minute": 100}  # never lower


@pytest.fixture
def store(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def cost(at: datetime, actor: str, tokens: int, model: str = "gpt-4o") -> dict:
    nanos = int(at.timestamp() * 1e9)
    return {"id": f"{nanos:016x}{record_id()[16:]}", "server": "s", "actor": actor, "tool": "t", "model": model,
            "time": at.isoformat(), "input_tokens": tokens, "output_tokens": 0, "result": "ok"}


def test_embedded_usage_sums_cost_events_per_bucket_and_model(store):
    starts = quota.bucket_starts(AT, 120, 60)
    store.upsert_many("cost_events", [cost(starts[0] + timedelta(seconds=5), "ann", 300),
                                      cost(starts[0] + timedelta(seconds=59), "bob", 100),
                                      cost(starts[1], "ann", 50), cost(starts[1], "ann", 999, model="other"),
                                      cost(starts[0] - timedelta(seconds=1), "ann", 7000)])  # before the window
    [result] = quota.embedded_usage(store, {"gpt-4o": {"tokens_per_minute": 1000}}, AT, 120, 60)
    assert [(b.tokens_per_minute, b.requests_per_minute) for b in result.buckets] == [(400, 2), (50, 1)]
    [halves] = quota.embedded_usage(store, {"gpt-4o": {"tokens_per_minute": 1000}}, AT, 150, 30)
    # 300 tokens in 30 s are 600 per minute
    assert [b.tokens_per_minute for b in halves.buckets] == [600, 200, 100, 0, 0]


@pytest.fixture
def webhook():
    with webhook_receiver() as hook:
        yield hook


def test_raise_is_idempotent_audited_notified_and_clear_closes_it(store, tmp_path, webhook):
    url, received = webhook
    settings = Settings(data_dir=tmp_path, quota_webhook_url=url, quota_window_seconds=180)
    store.upsert_many("cost_events", [cost(AT - timedelta(seconds=n), actor, tokens)
                                      for n in range(1, 100, 3) for actor, tokens in (("ann", 30), ("bob", 10))])
    first = activities.raise_advisory(store, settings, usage(900, 900, 900), AT)
    again = activities.raise_advisory(store, settings, usage(950, 950, 950), AT + timedelta(minutes=1))
    assert first["id"] == again["id"] == "advisory:gpt-4o:1" and len(quota.advisories(store)) == 1
    assert [i["actor"] for i in first["top_identities"]] == ["ann", "bob"]
    assert first["top_identities"][0]["share"] == 0.75
    assert first["recommended"] == {"tokens_per_minute": 2000, "requests_per_minute": 100}
    assert [(e["event"], e["advisory"]["id"]) for e in received] == [("quota.advisory.raised", "advisory:gpt-4o:1")]

    cleared = activities.clear_advisory(store, settings, first["id"], first["region"], AT + timedelta(minutes=5))
    activities.clear_advisory(store, settings, first["id"], first["region"], AT + timedelta(minutes=6))  # retried
    assert cleared["state"] == "cleared" and cleared["cleared_at"] == (AT + timedelta(minutes=5)).isoformat()
    assert [e["event"] for e in received] == ["quota.advisory.raised", "quota.advisory.cleared"]
    second = activities.raise_advisory(store, settings, usage(900, 900, 900), AT + timedelta(hours=1))
    assert second["id"] == "advisory:gpt-4o:2"  # a new episode after the first cleared
    audit = sorted((e["action"], e["entity"]) for e in store.query("audit"))
    assert audit == [("quota.advisory.cleared", "quota:gpt-4o"), ("quota.advisory.raised", "quota:gpt-4o"),
                     ("quota.advisory.raised", "quota:gpt-4o")]


def test_a_concurrent_raise_of_the_same_episode_adds_nothing(store, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    racer = quota.advisory_document(usage(900, 900, 900), 1, AT, 0.8, 180, [])
    store.create(quota.CONTAINER, {**racer, "state": "cleared"})  # lands between read and create
    monkeypatch.setattr(quota, "advisories", lambda *args, **kwargs: [])  # not visible at read time
    result = activities.raise_advisory(store, settings, usage(900, 900, 900), AT)
    monkeypatch.undo()
    assert result["id"] == "advisory:gpt-4o:1" and len(quota.advisories(store)) == 1


def test_a_failing_webhook_is_logged_not_fatal(store, tmp_path, caplog):
    settings = Settings(data_dir=tmp_path, quota_webhook_url="http://127.0.0.1:9/closed")
    advisory = activities.raise_advisory(store, settings, usage(900, 900, 900), AT)
    assert advisory["state"] == "open" and "quota webhook" in caplog.text


def test_azure_usage_reads_deployments_limits_and_metrics_through_the_real_clients():
    fake = FakeCognitive([deployment("gpt-4o", capacity=30, tokens_per_minute=30_000, requests_per_minute=180,
                                     renewal_period=10),
                          deployment("embed", capacity=50)],
                         {("gpt-4o", "TokenTransaction"): 27_000, ("gpt-4o", "AzureOpenAIRequests"): 20,
                          ("embed", "TokenTransaction"): 100})
    fake.throttle = 1  # the clients' retry policy honours Retry-After
    result = {u.deployment: u for u in activities.azure_usage([ACCOUNT], AT, 180, 60, FakeCredential(), transport=fake)}
    gpt, embed = result["gpt-4o"], result["embed"]
    assert gpt.limits == {"tokens_per_minute": 30_000, "requests_per_minute": 180} and gpt.region == "swedencentral"
    assert embed.limits == {"tokens_per_minute": 50_000}  # no rules: SKU capacity in thousands
    assert [(b.tokens_per_minute, b.requests_per_minute) for b in gpt.buckets] == [(27_000, 20)] * 3
    assert quota.assess(gpt, 0.8, 3) == "raise" and quota.assess(embed, 0.8, 3) == "clear"
    metrics_query = next(q for method, path, q in fake.requests if path.endswith("/metrics"))
    assert metrics_query["metricnames"] == ["TokenTransaction,AzureOpenAIRequests"]


def test_azure_errors_reach_the_activity_for_its_retry():
    fake = FakeCognitive([deployment("gpt-4o", capacity=1)], {})
    fake.throttle = 100
    with pytest.raises(HttpResponseError):
        activities.azure_usage([ACCOUNT], AT, 60, 60, FakeCredential(), transport=fake, retry_total=1)


def test_quota_queries_are_served_by_indexes(store):
    since = AT.isoformat()
    for filters, ranges in (({"kind": "advisory"}, None), ({"kind": "advisory", "deployment": "gpt-4o"}, None),
                            ({"kind": "sample"}, {"at": (since, None)})):
        plan = store.explain(quota.CONTAINER, filters, order_by="at", descending=True, ranges=ranges)
        assert all(step.startswith("SEARCH documents USING INDEX") for step in plan), (filters, plan)
    plan = store.explain("cost_events", {"model": "gpt-4o"}, ranges={"id": ("0", "f")})  # attribution, embedded usage
    assert all(step.startswith("SEARCH documents USING INDEX") for step in plan), plan
