"""Measure the simulators (not part of `make test`: minutes, and the whole machine).

    .venv/bin/python scripts/measure_simulators.py live [--devices 5000] [--rate 2000]
        [--duration 120] [--connections 0]
    .venv/bin/python scripts/measure_simulators.py virtual [--scenario scenarios/day_1000.yaml]

``live``: a Mosquitto of its own (simulators/bench_broker.py), `anxin simulate` against it for
the duration; prints the simulator's summary and the CPU share of the simulator and of
mosquitto (from /proc), and of the whole machine.
``virtual``: `anxin simulate --scenario … --out` (writing the traffic), `anxin devices import`,
`anxin replay --virtual --expect`, each timed, in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.bench_broker import machine_busy_s, process_cpu_s, running_broker  # noqa: E402

ANXIN = str(Path(sys.executable).parent / "anxin")


def live(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="anxin-measure-") as folder:
        work = Path(folder)
        with running_broker(work) as broker:
            env = {**os.environ, "ANXIN_MQTT_URL": broker.url, "ANXIN_VAR_DIR": str(work)}
            command = [
                ANXIN, "simulate", "--devices", str(args.devices), "--rate", str(args.rate),
                "--duration", f"{args.duration}s", "--connections", str(args.connections),
                "--json",
            ]  # fmt: skip
            before_machine = machine_busy_s() or 0.0
            before_broker = process_cpu_s(broker.pid) or 0.0
            started = time.monotonic()
            simulator = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
            peak_sim = 0.0
            while simulator.poll() is None:
                time.sleep(1)
                peak_sim = max(peak_sim, process_cpu_s(simulator.pid) or peak_sim)
            wall = time.monotonic() - started
            out, _ = simulator.communicate()
            broker_cpu = (process_cpu_s(broker.pid) or 0.0) - before_broker
            machine = (machine_busy_s() or 0.0) - before_machine
    summary = json.loads(out)
    print(json.dumps(summary, ensure_ascii=False))
    publishing_s = summary["publish_s"]
    print(
        f"{summary['devices']:,} devices over {summary['connections']:,} connections "
        f"(connected in {summary['connect_s']:.1f} s), "
        f"{summary['messages']:,} messages in {publishing_s:.1f} s = "
        f"{summary['msgs_per_s']:,.0f} msg/s (speed x{summary['speed']:g}); errors "
        f"{summary['errors'] or 'none'}\n"
        f"CPU: simulator {summary['cpu_s']:.1f} s = {100 * summary['cpu_s'] / wall:.0f} %"
        f" of a core; mosquitto {broker_cpu:.1f} s = {100 * broker_cpu / wall:.0f} % of a core; "
        f"whole machine {100 * machine / wall / (os.cpu_count() or 1):.0f} % of "
        f"{os.cpu_count()} cores (wall {wall:.1f} s with start and stop)"
    )


def virtual(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="anxin-measure-") as folder:
        work = Path(folder)
        env = {
            **os.environ,
            "ANXIN_DATABASE_URL": f"sqlite:///{work / 'anxin.db'}",
            "ANXIN_VAR_DIR": str(work),
        }
        steps = [
            ["simulate", "--scenario", args.scenario, "--registry", "fleet.csv", "--out",
             "day.jsonl"],
            ["devices", "import", "fleet.csv"],
            ["replay", "day.jsonl", "--virtual", "--tick", args.tick, "--expect", args.scenario],
        ]  # fmt: skip
        for step in steps:
            started = time.monotonic()
            result = subprocess.run(  # noqa: S603
                [ANXIN, *step], env=env, cwd=work, capture_output=True, text=True, check=False
            )
            took = time.monotonic() - started
            print(f"$ anxin {' '.join(step)}   # {took:.1f} s wall, exit {result.returncode}")
            tail = (result.stdout.strip().splitlines() or [""])[-1:]
            for line in [*tail, *result.stderr.strip().splitlines()[-3:]]:
                print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("live")
    one.add_argument("--devices", type=int, default=5000)
    one.add_argument("--rate", type=float, default=2000)
    one.add_argument("--duration", type=float, default=120)
    one.add_argument("--connections", type=int, default=0)
    two = sub.add_parser("virtual")
    two.add_argument("--scenario", default=str(ROOT / "scenarios" / "day_1000.yaml"))
    two.add_argument("--tick", default="60s")
    args = parser.parse_args()
    live(args) if args.what == "live" else virtual(args)


if __name__ == "__main__":
    main()
