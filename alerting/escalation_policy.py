"""When an unclaimed alert is escalated, reminded and its contacts told; what the messages say.

Pure: rule settings and an alert's stored times in, deadlines and texts out. The escalation
pass (alerting/escalation.py) asks the database for the same thing as an indexed range
(``cutoff``): an alert is due when its deadline is at or before now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone

from alerting.escalation_rules import EscalationLevel, EscalationRule, NotifyRule
from alerting.model import AlertType, Priority

# China Standard Time, no daylight saving: the time a contact reads in a message.
CST = timezone(timedelta(hours=8), "CST")

# Later than this after its deadline, an escalation is a catch-up (the scheduler was not
# running, or a backlog): it is still done, and said so.
CATCH_UP_AFTER = timedelta(seconds=30)

TYPE_ZH: Mapping[AlertType, str] = {
    AlertType.SOS: "紧急呼叫",
    AlertType.FALL: "跌倒报警",
    AlertType.SMOKE: "烟雾报警",
    AlertType.GAS: "燃气泄漏报警",
    AlertType.CO: "一氧化碳报警",
    AlertType.WATER_LEAK: "漏水报警",
    AlertType.HEAT: "室温过高报警",
    AlertType.COLD: "室温过低报警",
    AlertType.INACTIVITY: "长时间无活动",
    AlertType.CHECKIN_MISSED: "未按时报平安",
    AlertType.NIGHT_DOOR: "夜间开门",
    AlertType.BED_NOT_VACATED: "长时间未起床",
    AlertType.DEVICE_OFFLINE: "设备离线",
    AlertType.LOW_BATTERY: "设备电量低",
    AlertType.POWER_LOSS: "停电",
    AlertType.TAMPER: "设备被拆动",
    AlertType.TEST_OVERDUE: "设备未按时自检",
    AlertType.SERVICE_REQUEST: "服务请求",
    AlertType.DEVICE_ALARM: "设备报警（类型不明）",
    AlertType.VITAL_SIGNS: "心率或血氧持续异常",
    AlertType.VISIT_NEEDED_HELP: "上门巡访发现老人需要帮助",
}
PRIORITY_ZH: Mapping[Priority, str] = {
    Priority.CRITICAL: "紧急",
    Priority.HIGH: "高",
    Priority.MEDIUM: "中",
    Priority.LOW: "低",
}


def claim_deadline(level: EscalationLevel, queued_at: datetime) -> datetime | None:
    """When an alert that entered the queue at ``queued_at`` is escalated if still unclaimed."""
    return queued_at + level.claim_within if level.escalates else None


def next_reminder(level: EscalationLevel, reminded_at: datetime, reminders: int) -> datetime | None:
    """When an escalated, still unclaimed alert is reminded next; None once the bound is hit."""
    if not level.escalates or reminders >= level.max_reminders:
        return None
    return reminded_at + level.remind_every


def contacts_deadline(
    rule: NotifyRule, alert: AlertType, priority: Priority, queued_at: datetime
) -> datetime | None:
    """When the elder's contacts are told of an alert still unclaimed (once per alert)."""
    contacts = rule.contacts
    return queued_at + contacts.after_unclaimed if contacts.applies_to(alert, priority) else None


def cutoff(now: datetime, wait: timedelta) -> datetime:
    """The SQL form of ``deadline <= now`` for ``deadline = start + wait``: ``start <= cutoff``."""
    return now - wait


def escalating_priorities(rule: EscalationRule) -> list[Priority]:
    return [p for p in Priority if rule.level(p).escalates]


def whole_seconds(span: timedelta) -> int:
    return max(int(span.total_seconds()), 0)


def _waited(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}秒"
    return f"{seconds // 60}分钟"


def escalated_text(alert_id: int, alert: AlertType, priority: Priority, waited_s: int) -> str:
    return (
        f"【安心】{TYPE_ZH[alert]}（{PRIORITY_ZH[priority]}）告警 #{alert_id} "
        f"已等待{_waited(waited_s)}无人认领，已自动升级，请主管立即安排处理。"
    )


def reminder_text(
    alert_id: int, alert: AlertType, priority: Priority, waited_s: int, reminder: int
) -> str:
    return (
        f"【安心】第{reminder}次提醒：{TYPE_ZH[alert]}（{PRIORITY_ZH[priority]}）告警 #{alert_id} "
        f"已等待{_waited(waited_s)}，仍无人认领。"
    )


def digest_text(count: int, late: bool) -> str:
    why = "（平台恢复后补发）" if late else ""
    return f"【安心】{count}条告警超时无人认领，已自动升级{why}，请主管立即查看告警队列。"


def contact_text(elder_name: str, alert: AlertType, created_at: datetime) -> str:
    """The message an elder's contact gets (SMS, or read out by a voice call). It goes out
    because no dispatcher has taken the call yet, so it promises no one is on the way: "the
    platform has it and is arranging help; please call the elder or go and look"."""
    local = created_at.astimezone(CST)
    return (
        f"【安心】您的家人{elder_name}于{local:%m月%d日%H:%M}发出{TYPE_ZH[alert]}，"
        "平台已收到，正在安排处理。请您尽快与老人联系或前往查看。如需帮助请拨打12349。"
    )


def late_by(deadline: datetime, now: datetime) -> timedelta:
    return max(now - deadline, timedelta())


def is_catch_up(deadline: datetime, now: datetime) -> bool:
    return late_by(deadline, now) > CATCH_UP_AFTER


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def first_contacts(
    contacts: Sequence[tuple[int, str, str, str]], limit: int
) -> list[tuple[int, str, str, str]]:
    """(position, name, phone, relation) in calling order, the first ``limit``."""
    return sorted(contacts, key=lambda c: c[0])[:limit]
