"""``anxin scheduler`` for real: an unclaimed SOS is escalated and the supervisors' webhook gets
a signed POST; a claim through the lifecycle stops the reminders."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from alerting.decisions import RaiseAlert
from alerting.model import ALERT_KINDS, AlertType
from alerting.notifiers import SIGNATURE_HEADER, sign
from alerting.store import get_timeline, raise_or_coalesce
from anxin.database import open_database
from tests.support.service import anxin_env, running_anxin, wait_until
from tests.support.webhook import receiver

SECRET = "an-operator-secret-0123456789"


def test_the_scheduler_role_escalates_and_posts_to_the_webhook(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    # One second to claim, so the test waits one pass of the scheduler (5 s), not a minute.
    rules.write_text("[escalation.critical]\nclaim_within_s = 1\nremind_every_s = 600\n")
    with receiver() as hook:
        setup = anxin_env(
            tmp_path / "anxin",
            ANXIN_RULES_FILE=str(rules),
            ANXIN_NOTIFY_WEBHOOK_URL=hook.url,
            ANXIN_NOTIFY_WEBHOOK_SECRET=SECRET,
        )
        upgraded = setup.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
        try:
            kind = ALERT_KINDS[AlertType.SOS]
            now = datetime.now(UTC)
            with sessions.begin() as session:
                alert_id = raise_or_coalesce(
                    session,
                    RaiseAlert(
                        device_id="p1",
                        elder_id=None,
                        type=AlertType.SOS,
                        category=kind.category,
                        priority=kind.priority,
                        occurred_at=now,
                    ),
                    now,
                ).alert_id
            with running_anxin(setup, "scheduler"):
                headers, body = wait_until(lambda: hook.received[0] if hook.received else None)

                def notified() -> bool | None:
                    with sessions() as session:
                        actions = [e.action for e in get_timeline(session, alert_id)]
                    return True if "notified" in actions else None

                wait_until(notified)
        finally:
            engine.dispose()
    assert headers[SIGNATURE_HEADER] == sign(SECRET.encode(), body)
    sent = json.loads(body)
    assert (sent["kind"], sent["alert_ids"]) == ("alert.escalated", [alert_id])
    with sessions() as session:
        actions = [e.action for e in get_timeline(session, alert_id)]
    assert actions == ["created", "escalated", "notified"]
    log = (setup.folder / "anxin-scheduler.log").read_text()
    assert "scheduler.notify_channels" in log
    assert SECRET not in log
