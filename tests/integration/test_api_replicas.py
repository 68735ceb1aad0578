"""Two ``anxin api`` replicas on one PostgreSQL: a dispatcher's stream on replica A, A killed
(SIGKILL), the client reconnects to replica B with ``Last-Event-ID``: every change made
meanwhile arrives once, including one committed late by a transaction that was in flight when
A went (its id below ids already sent), and nothing the client had comes again."""

from __future__ import annotations

import json
import signal
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from alerting import lifecycle
from alerting.store import AlertEventRow
from anxin.database import open_database, upgrade
from tests.support.api_world import SECRET, add_registry, add_users, event_stream, raise_alert
from tests.support.service import anxin_env
from tests.support.together import start_together

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
MEANWHILE = 5


def test_a_stream_resumes_on_another_replica_with_no_gap_and_no_repeat(
    postgres_url: str, tmp_path: Path
) -> None:
    engine, sessions = open_database(postgres_url)
    upgrade(engine)
    with sessions.begin() as session:
        add_users(session)
        registry = add_registry(session)
    common = {
        "ANXIN_DATABASE_URL": postgres_url,
        "ANXIN_SECRET_KEY": SECRET,
        "ANXIN_SSE_POLL_S": "0.1",
    }
    a = anxin_env(tmp_path / "a", **common)
    b = anxin_env(tmp_path / "b", **common)
    received: list[dict[str, object]] = []
    try:
        with ExitStack() as running:
            replica_a, _ = start_together(running, [a, b], "api")
            headers = {"Authorization": f"Bearer {a.token('dispatcher', 'a-good-password')}"}
            with event_stream(f"{a.api_url}/api/v1/alerts/stream", headers) as stream:
                with sessions.begin() as session:
                    first = raise_alert(session, "p-zhang", registry.zhang, T0)
                received.append(stream.next().json()["event"])
                # A transaction in flight: its row's id is taken, not yet visible.
                slow = sessions()
                lifecycle.add_note(slow, first, actor="wang", now=T0, text="in flight")
                slow.flush()
                with sessions.begin() as session:
                    raise_alert(session, "p-zhao", registry.zhao, T0)
                last = stream.next()
                received.append(last.json()["event"])
                replica_a.send_signal(signal.SIGKILL)
                replica_a.wait(timeout=10)
            # A is gone. Meanwhile: the late commit, new alerts, a note.
            slow.commit()
            slow.close()
            with sessions.begin() as session:
                meanwhile = [
                    raise_alert(session, f"p-meanwhile-{n}", None, T0) for n in range(MEANWHILE)
                ]
                lifecycle.add_note(session, first, actor="wang", now=T0, text="meanwhile")
            resumed_headers = {**headers, "Last-Event-ID": last.id or ""}
            with event_stream(f"{b.api_url}/api/v1/alerts/stream", resumed_headers) as resumed:
                for _ in range(MEANWHILE + 2):
                    received.append(resumed.next().json()["event"])
                assert resumed.nothing_more(within_s=1.5)
        with sessions() as session:
            committed = set(session.scalars(select(AlertEventRow.id)).all())
    finally:
        engine.dispose()

    ids = Counter(int(str(event["id"])) for event in received)
    lost, repeated = committed - set(ids), [i for i, n in ids.items() if n > 1]
    print(
        "\n" + json.dumps({"events": len(committed), "lost": len(lost), "repeated": len(repeated)})
    )
    assert "~" in (last.id or ""), "the in-flight row was not a gap when A was killed"
    assert (lost, repeated) == (set(), [])
    texts = [e["detail"] for e in received if e["action"] == "note"]
    assert texts == [{"text": "in flight"}, {"text": "meanwhile"}]
    assert {e["alert_id"] for e in received if e["action"] == "created"} >= set(meanwhile)
