from __future__ import annotations

import json

from simulators.sos_resend import SosResends

TOPIC = "anxin/v1/p-1/sos"


def sos(seq: int) -> bytes:
    return json.dumps({"ts": 0, "seq": seq, "trigger": "button"}).encode()


def ack(seq: int | None = None, status: str = "received") -> bytes:
    body: dict[str, object] = {"alert_id": 1, "status": status, "message": "…"}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body).encode()


def test_an_unanswered_sos_is_sent_again_with_the_same_seq_every_interval() -> None:
    book = SosResends(resend_s=10)
    book.pressed("p-1", TOPIC, sos(7), now=0.0)
    assert book.due(9.9) == []
    assert book.due(10.0) == [("p-1", TOPIC, sos(7))]
    assert book.due(15.0) == []  # the interval counts from the last sending
    assert book.due(20.0) == [("p-1", TOPIC, sos(7))]
    assert book.resent == 2


def test_the_ack_of_its_seq_ends_the_resending() -> None:
    book = SosResends(resend_s=10)
    book.pressed("p-1", TOPIC, sos(1), now=0.0)
    book.pressed("p-1", TOPIC, sos(2), now=1.0)
    assert book.acked("p-1", ack(2))
    assert book.due(30.0) == [("p-1", TOPIC, sos(1))]
    assert not book.acked("p-1", ack(2))  # already answered: again changes nothing
    assert book.acked("p-1", ack(1))
    assert book.due(60.0) == []
    assert (book.unanswered, book.answered) == (0, 2)


def test_an_ack_without_seq_answers_the_oldest_press_and_others_answer_nothing() -> None:
    book = SosResends(resend_s=10)
    book.pressed("p-1", TOPIC, sos(1), now=0.0)
    book.pressed("p-1", TOPIC, sos(2), now=0.0)
    assert not book.acked("p-1", ack(1, status="handled"))
    assert not book.acked("p-1", b"not json")
    assert not book.acked("p-2", ack())
    assert book.acked("p-1", ack())
    assert [payload for _, _, payload in book.due(10.0)] == [sos(2)]
