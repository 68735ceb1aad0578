"""The provisioned Grafana dashboard's InfluxQL, run against a real influxd with a small fleet
(Grafana itself is not run: it is not in Debian). Grafana's variables are replaced as Grafana
would: the time filter, the interval, "All" communities (``.*``), the online window."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.telemetry.points import Point, encode_batch
from ingest.telemetry.sink_v1 import InfluxV1
from tests.support.influx import InfluxServer

pytestmark = pytest.mark.integration

GRAFANA = Path(__file__).parents[2] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "fleet-health.json"


def influxql_of(dashboard: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(panel title, refId) → InfluxQL, with Grafana's variables replaced."""
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if target["datasource"]["uid"] == "anxin-influxdb":
                query = (
                    target["query"]
                    .replace("$timeFilter", "time > now() - 1h")
                    .replace("$__interval", "10m")
                    .replace("$community", ".*")
                    .replace("$online_window", "15m")
                )
                queries[(panel["title"], target["refId"])] = query
    return queries


def test_dashboard_queries_answer_on_a_fleet(influxd: InfluxServer, influx_database: str) -> None:
    now = int(time.time() * 1000)
    minute = 60_000

    def beat(device: str, community: str, battery: float, age_ms: int) -> Point:
        tags = {"community": community, "device_id": device, "model": "sos-pendant"}
        return Point("heartbeat", tags, {"seen": 1, "battery": battery}, now - age_ms)

    fleet = [
        beat("p1", "张家口市/张北县/花园街道/幸福社区", 90, 2 * minute),
        beat("p1", "张家口市/张北县/花园街道/幸福社区", 91, 40 * minute),
        beat("p2", "张家口市/张北县/花园街道/幸福社区", 15, 5 * minute),
        beat("p3", "张家口市/崇礼区", 55, 10 * minute),
        beat("p4", "张家口市/崇礼区", 10, 3 * 60 * minute),  # silent for 3 hours: not online
    ]
    encoded = encode_batch(fleet)
    assert encoded is not None
    InfluxV1(influxd.url, influx_database).write(encoded.body)
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = influxql_of(dashboard)
    answers = {key: influxd.query(influx_database, q) for key, q in queries.items()}

    def value(title: str, ref: str = "A") -> object:
        return answers[(title, ref)][0]["values"][0][1]  # type: ignore[index]

    assert value("Online share", "A") == 3  # p1, p2, p3 in the last 15 minutes
    assert value("Online share", "B") == 4  # every device in 7 days
    assert value("Devices heard from", "A") == 3
    assert value("Low battery (≤ 20 %)") == 2  # p2 (15) and p4 (10)
    batteries = sorted(row[1] for row in answers[("Battery distribution", "A")][0]["values"])  # type: ignore[index]
    assert batteries == [10, 15, 55, 90]  # the last reading of each device
    assert (
        sum(row[1] for row in answers[("Heartbeats stored per second", "A")][0]["values"]) == 4 / 60
    )  # type: ignore[index]
    per_interval = [row[1] for row in answers[("Devices heard from over time", "A")][0]["values"]]  # type: ignore[index]
    assert sum(per_interval) == 4  # p1 twice (40 and 2 minutes ago), p2, p3
    community = next(v for v in dashboard["templating"]["list"] if v["name"] == "community")
    [tags] = influxd.query(influx_database, community["query"])
    assert [row[1] for row in tags["values"]] == [  # type: ignore[index]
        "张家口市/崇礼区",
        "张家口市/张北县/花园街道/幸福社区",
    ]


def test_provisioning_files_point_at_the_dashboard_and_data_sources() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/anxin.yaml").read_text())
    uids = {s["uid"] for s in sources["datasources"]}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert used - {"__expr__"} <= uids
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/anxin.yaml").read_text())
    assert providers["providers"][0]["type"] == "file"
