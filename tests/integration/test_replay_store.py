"""The virtual replay's memory store (simulators/replay_store.py) against the SQL one: the same
alerts, and the same rows left in the database, on the bundled scenarios and on random ones.

The SQL path (`--sql-store`) is ingest's own pipeline and a scheduler pass at every tick, as
live (tests/integration/test_simulators.py shows it raises what a live replay raises); the
memory path must leave exactly what it leaves: alerts and their timelines, deadlines, the
devices' last-seen times, dead letters, the pulse and the outages.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from alerting.engine import RulesEngine
from anxin.database import open_database, upgrade
from devices.catalogue import CATALOGUE
from devices.codec import NativeCodec
from ingest.decoding import MessageDecoder
from simulators.generate import scenario_traffic
from simulators.replay import VirtualReplay, copy_registry, named_devices
from simulators.scenario import load_scenario
from simulators.scenario_file import ScenarioError
from simulators.traffic import TrafficLine
from tests.support.service import AnxinEnv, anxin_env

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
# Every table a replay writes, ordered so that equal contents compare equal.
TABLES = {
    "alerts": "id",
    "alert_events": "id",
    "welfare_deadlines": "rule, subject",
    "devices": "id",
    "dead_letters": "id",
    "service_pulses": "name",
    "platform_outages": "id",
    "zigbee_states": "friendly_name",
}


def rows(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(database) as connection:
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()  # noqa: S608
            for table, order in TABLES.items()
        }


def cli(setup: AnxinEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """As AnxinEnv.cli, with time for day_1000's SQL path (a minute or more)."""
    return setup.cli(*args, timeout_s=900)


@pytest.mark.parametrize(
    ("name", "tick"),
    [
        # make test keeps the outage guard's path and the week of welfare deadlines (four
        # CLI runs a scenario, ~30 s each on the shared machine); the rest under -m bench.
        ("broker_outage", "60s"),
        pytest.param("building_fire", "60s", marks=pytest.mark.bench),
        pytest.param("night_fall", "60s", marks=pytest.mark.bench),
        pytest.param("watches", "60s", marks=pytest.mark.bench),
        # A week: 10,080 passes of the SQL path at 60 s (two minutes); 10 m in make test.
        ("quiet_week", "10m"),
        pytest.param("quiet_week", "60s", marks=pytest.mark.bench),
        # 112,062 messages: the SQL path takes a minute or more of the shared machine.
        pytest.param("day_1000", "60s", marks=pytest.mark.bench),
    ],
)
def test_the_memory_store_leaves_what_the_sql_store_leaves(
    name: str, tick: str, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin")
    scenario = str(SCENARIOS / f"{name}.yaml")
    made = cli(setup, "simulate", "--scenario", scenario, "--registry", "fleet.csv", "--out", "t")
    assert made.returncode == 0, made.stderr
    assert cli(setup, "devices", "import", "fleet.csv").returncode == 0
    replays = {}
    for store in ("memory", "sql"):
        kept = tmp_path / f"{store}.db"
        extra = ["--sql-store"] if store == "sql" else []
        replays[store] = cli(
            setup, "replay", "t", "--virtual", "--tick", tick, "--json", "--expect", scenario,
            "--keep-db", str(kept), *extra,
        )  # fmt: skip
        assert replays[store].returncode == 0, replays[store].stderr  # --expect: as expected
    # Every field of every alert (ids, virtual times, counts), not only type and status.
    assert replays["memory"].stdout == replays["sql"].stdout
    assert replays["memory"].stdout.strip()
    assert rows(tmp_path / "memory.db") == rows(tmp_path / "sql.db")


# --- random timelines on a small fleet --------------------------------------------------------

FLEET = [
    {
        "homes": 3,
        "models": [
            "sos-pendant", "fall-detector", "smoke-detector", "temperature-sensor",
            "water-leak", "pir-motion",
        ],
        "categories": ["living_alone"],
    },
]  # fmt: skip
HOURS = 2
ELDERS = st.integers(min_value=1, max_value=3)
SHORT = st.integers(min_value=5, max_value=120).map(lambda s: f"{s}s")
LONG = st.integers(min_value=1, max_value=150).map(lambda m: f"{m}m")
SITUATIONS: list[st.SearchStrategy[dict[str, Any]]] = [
    st.fixed_dictionaries(
        {
            "elder": ELDERS,
            "model": st.just("sos-pendant"),
            "sos": st.fixed_dictionaries(
                {"presses": st.integers(min_value=1, max_value=12), "every": SHORT}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "elder": ELDERS,
            "model": st.just("fall-detector"),
            "fall": st.one_of(st.just({}), st.fixed_dictionaries({"cancel_after": SHORT})),
        }
    ),
    *[
        st.fixed_dictionaries(
            {
                "elder": ELDERS,
                "model": st.just(model),
                alarm: st.one_of(st.just({}), st.fixed_dictionaries({"restore_after": LONG})),
            }
        )
        for alarm, model in (
            ("smoke", "smoke-detector"),
            ("water_leak", "water-leak"),
            ("tamper", "smoke-detector"),
        )
    ],
    st.fixed_dictionaries(
        {
            "elder": ELDERS,
            "model": st.sampled_from(["sos-pendant", "fall-detector", "water-leak"]),
            "offline": st.fixed_dictionaries(
                {"cause": st.sampled_from(["network", "power"]), "for": LONG}
            ),
        }
    ),
    st.fixed_dictionaries({"broker_outage": st.fixed_dictionaries({"for": LONG})}),
    st.fixed_dictionaries(
        {
            "elder": ELDERS,
            "model": st.just("water-leak"),
            "battery": st.fixed_dictionaries({"level": st.integers(min_value=0, max_value=30)}),
        }
    ),
    st.fixed_dictionaries(
        {
            "elder": ELDERS,
            "model": st.just("temperature-sensor"),
            "temperature": st.fixed_dictionaries(
                {"value": st.sampled_from([-5.0, 45.0, 60.0]), "for": LONG}
            ),
        }
    ),
    st.fixed_dictionaries({"elder": ELDERS, "quiet": st.fixed_dictionaries({"for": LONG})}),
]
STEP = st.tuples(st.integers(min_value=0, max_value=HOURS * 60 - 1), st.one_of(*SITUATIONS)).map(
    lambda pair: {"at": f"{pair[0]}m", "expect": [], **pair[1]}
)


def scenario_text(timeline: list[dict[str, Any]]) -> str:
    """A scenario file (JSON is YAML) with the fixed fleet and this timeline."""
    return json.dumps(
        {
            "name": "random",
            "start": "2026-03-02T06:00:00+08:00",
            "duration": f"{HOURS}h",
            "device_prefix": "rnd",
            "fleet": FLEET,
            "timeline": timeline,
        }
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fleet imported (anxin devices import), and an empty migrated database to copy."""
    folder = tmp_path_factory.mktemp("registry")
    setup = anxin_env(folder / "anxin")
    (folder / "fleet.yaml").write_text(scenario_text([]), encoding="utf-8")
    made = setup.cli(
        "simulate", "--scenario", str(folder / "fleet.yaml"), "--registry", "fleet.csv",
        "--out", "t",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert setup.cli("devices", "import", "fleet.csv").returncode == 0
    empty = folder / "empty.db"
    engine, _ = open_database(f"sqlite:///{empty}")
    upgrade(engine)
    engine.dispose()
    return setup.database_path, empty


def replayed(
    registry: tuple[Path, Path], lines: list[TrafficLine], tick: timedelta, in_memory: bool
) -> tuple[list[dict[str, Any]], dict[str, list[tuple[Any, ...]]]]:
    source_path, empty = registry
    with tempfile.TemporaryDirectory() as folder:
        target_path = Path(folder) / "replay.db"
        shutil.copy(empty, target_path)
        source_engine, source = open_database(f"sqlite:///{source_path}")
        target_engine, target = open_database(f"sqlite:///{target_path}")
        decoder = MessageDecoder(native=NativeCodec())
        try:
            first = min(line.time for line in lines)
            ids, names = named_devices(
                [line.topic for line in lines if hasattr(line, "topic")], decoder
            )
            copy_registry(source, target, ids, names, first)
            replay = VirtualReplay(
                sessions=target,
                decoder=decoder,
                engine=RulesEngine(),
                catalogue=CATALOGUE,
                start=first,
                tick=tick,
                in_memory=in_memory,
            )
            report = replay.run(lines)
        finally:
            source_engine.dispose()
            target_engine.dispose()
        return report.alerts, rows(target_path)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    timeline=st.lists(STEP, min_size=1, max_size=8),
    tick=st.sampled_from([timedelta(seconds=20), timedelta(seconds=60), timedelta(minutes=5)]),
)
def test_random_timelines_leave_the_same_rows_either_way(
    registry: tuple[Path, Path], timeline: list[dict[str, Any]], tick: timedelta
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.yaml"
        path.write_text(scenario_text(timeline), encoding="utf-8")
        try:
            scenario = load_scenario(path)
        except ScenarioError:
            reject()  # a situation the device picked cannot do
    lines = list(scenario_traffic(scenario))
    memory = replayed(registry, lines, tick, in_memory=True)
    sql = replayed(registry, lines, tick, in_memory=False)
    assert memory[0] == sql[0]
    assert memory[1] == sql[1]
