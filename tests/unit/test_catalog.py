"""The catalog's entries and their mapping to and from the MCP registry's server.json (issue 13 item 3)."""

from __future__ import annotations

from datetime import date

import pytest

from shared import catalog
from shared.clearance import problems
from shared.freshness import catalog_findings
from shared.settings import Settings

REQUIRED = {"echo", "time", "fetch", "git", "filesystem", "memory", "everything", "sqlite", "sequential-thinking"}
ENTRIES = catalog.load_catalog([(catalog.CATALOG_DIR, "curated")])


def test_the_catalog_holds_the_required_entries_with_every_fact():
    assert REQUIRED <= {entry.name for entry in ENTRIES}
    for entry in ENTRIES:
        summary = entry.summary()
        assert summary["title"] and summary["description"] and summary["version"] and summary["license"], entry.name
        assert summary["tags"] and summary["transport"] == "stdio" and summary["session_mode"] in ("shared", "isolated")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.name)
def test_every_curated_spec_passes_default_clearance(entry):
    if entry.name == "echo":  # the repository's own module, run by `python -m`
        assert entry.spec.package.command == "python"
    assert problems(entry.spec, Settings()) == []


def test_freshness_still_reads_every_entry():
    found = {finding.id: finding for finding in catalog_findings(date(2026, 12, 2))}
    assert set(found) == {entry.name for entry in ENTRIES}
    assert not any(finding.stale for finding in found.values())
    assert found["time"].title == "Time"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.name)
def test_an_entry_round_trips_through_server_json(entry, tmp_path):
    document = catalog.to_server_json(entry)
    assert document["$schema"].endswith("/server.schema.json") and "/" in document["name"]
    meta, spec = catalog.from_registry(document)
    assert spec == entry.spec and meta.tags == entry.meta.tags and meta.license == entry.meta.license
    assert catalog.load_entry(catalog.write_entry(tmp_path, meta, spec), "imported").spec == entry.spec


def registry_package(registry_type: str, identifier: str, **extra) -> dict:
    package = {"registryType": registry_type, "identifier": identifier, "version": "1.2.3",
               "transport": {"type": "stdio"}, **extra}
    return {"name": "io.github.acme/Weather MCP", "description": "Weather.", "version": "1.2.3", "packages": [package]}


def test_an_npm_package_maps_to_a_pinned_npx_spec_with_secret_names_only():
    env = [{"name": "API_KEY", "isSecret": True, "isRequired": True, "description": "key"},
           {"name": "UNITS", "default": "metric"}]
    document = registry_package("npm", "@acme/weather-mcp", environmentVariables=env,
                                packageArguments=[{"type": "named", "name": "--region", "value": "eu"},
                                                  {"type": "positional", "value": "data"}])
    meta, spec = catalog.from_registry(document)
    assert spec.name == "weather-mcp"
    assert [spec.package.command, *spec.package.args] == ["npx", "-y", "@acme/weather-mcp@1.2.3", "--region=eu", "data"]
    assert spec.package.env == {"UNITS": "metric"} and spec.package.secrets == {}
    assert [(s.name, s.required) for s in meta.secrets] == [("API_KEY", True)] and meta.core is False
    assert problems(spec, Settings()) == []


def test_a_pypi_package_maps_to_uvx_and_a_package_outside_the_patterns_is_refused_by_clearance():
    _, spec = catalog.from_registry(registry_package("pypi", "mcp-server-weather"))
    assert [spec.package.command, *spec.package.args] == ["uvx", "mcp-server-weather==1.2.3"]
    assert problems(spec, Settings()) == []
    _, other = catalog.from_registry(registry_package("pypi", "weather-tools"), name="weather")
    assert any("weather-tools" in problem["message"] for problem in problems(other, Settings()))


@pytest.mark.parametrize(("document", "needle"), [
    ({"name": "io.x/a", "packages": [{"registryType": "nuget", "identifier": "A", "transport": {"type": "stdio"}}]},
     "nuget"),
    ({"name": "io.x/a", "packages": [{"registryType": "npm", "identifier": "a", "transport": {"type": "sse"}}]},
     "stdio"),
    ({"name": "io.x/a", "remotes": [{"type": "streamable-http", "url": "https://a.example/mcp",
                                     "headers": [{"name": "X-Key", "isRequired": True}]}]}, "headers"),
    ({"name": "io.x/a"}, "no npm/pypi"),
    ({"name": "io.x/!!!", "remotes": [{"type": "streamable-http", "url": "https://a.example/mcp"}]}, "server name"),
    ({"name": "io.x/a", "remotes": [{"type": "streamable-http", "url": "ftp://a.example"}]}, "valid entry"),
])
def test_unmappable_registry_entries_are_refused_with_a_reason(document, needle):
    with pytest.raises(catalog.CatalogError, match=needle):
        catalog.from_registry(document)


def test_registry_answers_of_every_v01_shape_are_read():
    server = {"name": "io.x/a"}
    assert catalog.registry_documents(server) == [server]
    assert catalog.registry_documents({"server": server, "_meta": {}}) == [server]
    assert catalog.registry_documents({"servers": [{"server": server}, {"server": server}],
                                       "metadata": {"nextCursor": None}}) == [server, server]
    with pytest.raises(catalog.CatalogError):
        catalog.registry_documents(["not", "a", "registry", "answer"])


def test_search_needs_every_word():
    time = catalog.find(ENTRIES, "time")
    assert time.matches("TIMEZONE") and time.matches("time clock") and not time.matches("time git")
    with pytest.raises(catalog.NotFoundError):
        catalog.find(ENTRIES, "ghost")
