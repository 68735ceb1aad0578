"""Notifiers: the ports through which the supervisors and an elder's contacts hear of alerts.

A ``Notifier`` delivers one ``Notification`` or raises; the outbox (alerting/outbox.py) calls it
off the scheduler's critical path, retries it and records the result on the alert's timeline.
Shipped: ``WebhookNotifier`` (a JSON POST, retried, optionally signed), ``LogNotifier`` and
``MemoryNotifier`` (tests). An SMS or voice gateway implements ``ContactGateway`` and is plugged
in with ``GatewayNotifier``. Nothing here logs personal data (names, phones, places).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, cast, runtime_checkable

import httpx
import structlog
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Anxin-Signature"
DELIVERY_HEADER = "X-Anxin-Delivery"
KIND_HEADER = "X-Anxin-Kind"


class Channel(StrEnum):
    """Whom a notification is for."""

    SUPERVISORS = "supervisors"
    CONTACTS = "contacts"


class Kind(StrEnum):
    ESCALATED = "alert.escalated"
    REMINDER = "alert.escalation_reminder"
    DIGEST = "alert.escalation_digest"
    CONTACT = "contact.alert"
    # A home visit still open past its due time (alerting/visit_planner.py).
    VISIT_OVERDUE = "visit.overdue"


@dataclass(frozen=True, kw_only=True, slots=True)
class Notification:
    # The outbox row: the same on every attempt, so a receiver can drop a repeat (delivery is
    # at least once: a crash between sending and recording sends it again).
    delivery_id: int
    channel: Channel
    kind: Kind
    payload: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "channel": self.channel.value,
            "kind": self.kind.value,
            **self.payload,
        }


class DeliveryError(Exception):
    """The notification was not delivered; worth trying again later."""


class PermanentDeliveryError(DeliveryError):
    """The receiver refused the notification itself (a 4xx): trying again will not help."""


@runtime_checkable
class Notifier(Protocol):
    def notify(self, notification: Notification) -> None:
        """Deliver it, or raise (DeliveryError, or any exception: the outbox retries)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ContactMessage:
    """What an SMS or voice gateway gets: one contact of an elder, told of one alert.

    ``text`` is the message in Chinese, ready to send as an SMS or read out by a voice call.
    """

    delivery_id: int
    alert_id: int
    alert_type: str
    priority: str
    created_at: datetime
    location: Mapping[str, Any] | None
    elder_id: int
    elder_name: str
    # Calling order, 1 first, and how many contacts are told of this alert.
    position: int
    of: int
    contact_name: str
    contact_phone: str
    contact_relation: str
    text: str

    @classmethod
    def from_notification(cls, notification: Notification) -> ContactMessage:
        p = notification.payload
        alert, elder, contact = p["alert"], p["elder"], p["contact"]
        return cls(
            delivery_id=notification.delivery_id,
            alert_id=alert["id"],
            alert_type=alert["type"],
            priority=alert["priority"],
            created_at=datetime.fromisoformat(alert["created_at"]),
            location=alert.get("location"),
            elder_id=elder["id"],
            elder_name=elder["name"],
            position=contact["position"],
            of=contact["of"],
            contact_name=contact["name"],
            contact_phone=contact["phone"],
            contact_relation=contact["relation"],
            text=p["text"],
        )


@runtime_checkable
class ContactGateway(Protocol):
    """An SMS or voice gateway: send ``message.text`` to ``message.contact_phone``, or raise.

    Configured with ``ANXIN_NOTIFY_CONTACT_GATEWAY=package.module:factory``, a callable with no
    arguments that returns the gateway. Raise ``PermanentDeliveryError`` for a message the
    provider will never take (an invalid number), anything else to be retried. The message of a
    ``DeliveryError`` is logged and shown on the alert's timeline, so it must not quote the
    phone number or a name; of any other exception only the class is kept.
    """

    def send(self, message: ContactMessage) -> None: ...


class GatewayNotifier:
    """The contacts channel through a ContactGateway."""

    def __init__(self, gateway: ContactGateway) -> None:
        self._gateway = gateway

    def notify(self, notification: Notification) -> None:
        if notification.channel is not Channel.CONTACTS:
            raise PermanentDeliveryError(f"a contact gateway cannot send {notification.kind}")
        self._gateway.send(ContactMessage.from_notification(notification))


def gateway_factory(spec: str) -> Callable[[], ContactGateway]:
    """``package.module:factory`` → the factory; ValueError saying what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError("a gateway is named package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name}: {exc}") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{module_name} has no callable {attribute}")
    return cast("Callable[[], ContactGateway]", factory)


def load_gateway(spec: str) -> ContactGateway:
    gateway = gateway_factory(spec)()
    if not isinstance(gateway, ContactGateway):
        raise TypeError(f"{spec} did not return a ContactGateway (a send(message) method)")
    return gateway


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and not isinstance(exc, PermanentDeliveryError)


class WebhookNotifier:
    """POSTs the notification as JSON (UTF-8, Chinese text as is) to one URL.

    Headers ``X-Anxin-Delivery`` (the delivery id, to drop repeats), ``X-Anxin-Kind`` and, with
    a secret, ``X-Anxin-Signature: sha256=<hex HMAC-SHA256 of the body>``. A 2xx answer is
    delivery; a timeout, a connection error, a 5xx or a 429 is tried again right away up to
    ``attempts`` times with a short exponential wait (then the outbox retries later); any other
    status is a permanent refusal.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        wait_s: float = 0.5,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        self._secret = secret.encode() if secret else None
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=wait_s, max=max(wait_s * 8, 0.0)),
            retry=retry_if_exception(_transient),
            sleep=sleep,
            reraise=True,
        )

    def notify(self, notification: Notification) -> None:
        body = json.dumps(notification.body(), ensure_ascii=False, default=str).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            DELIVERY_HEADER: str(notification.delivery_id),
            KIND_HEADER: notification.kind.value,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        self._retrying(self._post, body, headers)

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # The class only: an error's text may carry the URL, and with it a token.
            raise DeliveryError(type(exc).__name__) from None
        if response.is_success:
            return
        if response.status_code >= 500 or response.status_code == 429:
            raise DeliveryError(f"HTTP {response.status_code}")
        raise PermanentDeliveryError(f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class LogNotifier:
    """Writes that a notification would go out (kind, channel, alerts; no personal data)."""

    def notify(self, notification: Notification) -> None:
        log.info(
            "notify.logged",
            delivery_id=notification.delivery_id,
            channel=notification.channel.value,
            kind=notification.kind.value,
            alert_ids=notification.payload.get("alert_ids"),
        )


class MemoryNotifier:
    """Keeps what it was given; fails the first ``fail_first`` calls (pure tests)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[Notification] = []
        self.calls = 0
        self._fail_first = fail_first

    def notify(self, notification: Notification) -> None:
        self.calls += 1
        if self.calls <= self._fail_first:
            raise DeliveryError("memory notifier told to fail")
        self.sent.append(notification)
