"""``python -m tests.soak``: the soak benchmark (``make soak``); see tests/soak/run.py."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from tests.soak.run import TARGETS, SoakOptions, run_soak


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=_env("SOAK_MINUTES", 60))
    parser.add_argument("--devices", type=int, default=int(_env("SOAK_DEVICES", 2000)))
    parser.add_argument("--rate", type=float, default=_env("SOAK_RATE", 2000))
    parser.add_argument("--sos-interval", type=float, default=_env("SOAK_SOS_INTERVAL_S", 10))
    parser.add_argument("--sample-interval", type=float, default=_env("SOAK_SAMPLE_S", 60))
    parser.add_argument(
        "--max-growth", type=float, default=_env("SOAK_MAX_GROWTH_PCT", 5.0),
        help="fail when RSS grew by this many percent or more over the second half",
    )  # fmt: skip
    parser.add_argument(
        "--target", choices=TARGETS, default=os.environ.get("SOAK_TARGET", "serve"),
        help="serve; watch or dc09 (the gateway, serve behind it); members (anxin ingest x N"
        " on PostgreSQL)",
    )  # fmt: skip
    parser.add_argument("--members", type=int, default=int(_env("SOAK_MEMBERS", 3)))
    parser.add_argument(
        "--broker-delay-ms", type=float, default=_env("SOAK_BROKER_DELAY_MS", 0),
        help="the gateway's broker answers this much later (a busy machine, reproducibly)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the samples and the checks here")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs, db)")
    parser.add_argument(
        "--anxin-env", action="append", default=[], metavar="NAME=VALUE",
        help="more environment for anxin serve (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    options = SoakOptions(
        minutes=args.minutes,
        devices=args.devices,
        rate=args.rate,
        sos_interval_s=args.sos_interval,
        sample_s=args.sample_interval,
        max_growth_pct=args.max_growth,
        anxin_env=dict(item.split("=", 1) for item in args.anxin_env),
        folder=args.keep,
        target=args.target,
        members=args.members,
        broker_delay_ms=args.broker_delay_ms,
    )
    # Stopped by SIGTERM (or SIGINT, even started in the background): the services stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = run_soak(options)
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_json(), indent=1, ensure_ascii=False))
    print("soak: OK" if result.ok else "soak: FAILED")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
