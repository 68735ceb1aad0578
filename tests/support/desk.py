"""A hotline's scheduler on a virtual clock, against a real database (escalation tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle
from alerting.decisions import RaiseAlert
from alerting.engine import RulesEngine
from alerting.escalation import Escalator
from alerting.model import ALERT_KINDS, AlertType
from alerting.notifiers import Channel
from alerting.outbox import OutboxRow
from alerting.rules import RuleSet
from alerting.scheduler import Scheduler
from alerting.store import AlertEventRow, AlertRow, get_timeline, raise_or_coalesce
from devices.catalogue import apply_overrides
from devices.elders import ContactRow, ElderRow

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
CATALOGUE = apply_overrides({})
ALL_CHANNELS = frozenset(Channel)


class Desk:
    """The scheduler of a hotline, on a virtual clock."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: RuleSet | None = None,
        channels: frozenset[Channel] = ALL_CHANNELS,
    ) -> None:
        self.sessions, self.now = sessions, T0
        self.rules, self.channels = rules or RuleSet(), channels
        self.restart()

    def restart(self) -> None:
        """A new process: nothing kept in memory."""
        self.escalator = Escalator(
            escalation=self.rules.escalation, notify=self.rules.notify, channels=self.channels
        )
        self.scheduler = Scheduler(
            sessions=self.sessions,
            engine=RulesEngine(self.rules, CATALOGUE),
            catalogue=CATALOGUE,
            clock=lambda: self.now,
            escalator=self.escalator,
        )

    def at(self, seconds: float, every: timedelta = STEP) -> None:
        """Run the scheduler every 5 s (or ``every``) up to T0 + ``seconds``."""
        end = T0 + timedelta(seconds=seconds)
        while self.now < end:
            self.now = min(self.now + every, end)
            self.scheduler.step()

    def raise_alert(
        self, device_id: str, kind: AlertType = AlertType.SOS, elder_id: int | None = None
    ) -> int:
        info = ALERT_KINDS[kind]
        decision = RaiseAlert(
            device_id=device_id,
            elder_id=elder_id,
            type=kind,
            category=info.category,
            priority=info.priority,
            occurred_at=self.now,
        )
        with self.sessions.begin() as session:
            return raise_or_coalesce(session, decision, self.now).alert_id

    def claim(self, alert_id: int, who: str = "wang") -> None:
        with self.sessions.begin() as session:
            lifecycle.claim(session, alert_id, actor=who, now=self.now)

    def actions(self, alert_id: int) -> list[str]:
        with self.sessions() as session:
            return [e.action for e in get_timeline(session, alert_id)]

    def events(self, alert_id: int, action: str) -> list[AlertEventRow]:
        with self.sessions() as session:
            return [e for e in get_timeline(session, alert_id) if e.action == action]

    def alert(self, alert_id: int) -> AlertRow:
        with self.sessions() as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None
            return row

    def outbox(self) -> list[OutboxRow]:
        with self.sessions() as session:
            return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def add_elder(sessions: sessionmaker[Session], contacts: list[tuple[int, str]]) -> int:
    with sessions.begin() as session:
        elder = ElderRow(name="张秀英", phone="13800138000", categories=[])
        elder.contacts = [
            ContactRow(position=p, name=f"联系人{p}", phone=f"1390013900{p}", relation=r)
            for p, r in contacts
        ]
        session.add(elder)
        session.flush()
        return elder.id
