"""The short way of reading PUBLISH packets agrees with paho's own decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt import FAST_PATH, MalformedPublishError, decode_publish


def publish_body(
    topic: bytes, payload: bytes, qos: int, mid: int, properties: bytes | None
) -> bytes:
    """A PUBLISH after its fixed header; ``properties`` (packed, with their length) for MQTT 5."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if properties is not None:
        body += properties
    return body + payload


def mqtt5_properties(content_type: str | None, user: list[tuple[str, str]]) -> bytes:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if content_type is not None:
        properties.ContentType = content_type
    if user:
        properties.UserProperty = user
    packed: bytes = properties.pack()  # type: ignore[no-untyped-call]
    return packed


def test_the_installed_paho_has_what_the_fast_path_replaces() -> None:
    # If this fails after a paho upgrade, anxin still works (plain paho), only slower.
    assert FAST_PATH


# What MQTT text may not hold (MQTT-1.5.4): surrogates, NUL, and U+FEFF (paho refuses it).
characters = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\ufeff")
texts = st.text(characters, max_size=20)
topics = st.text(characters, min_size=1, max_size=80).map(str.encode)


@given(
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1]),
    mid=st.integers(1, 65535),
    retain=st.booleans(),
    dup=st.booleans(),
    content_type=st.none() | texts,
    user=st.lists(st.tuples(texts, texts), max_size=3),
)
def test_agrees_with_paho(
    topic: bytes,
    payload: bytes,
    qos: int,
    mid: int,
    retain: bool,
    dup: bool,
    content_type: str | None,
    user: list[tuple[str, str]],
) -> None:
    header = 0x30 | (0x08 if dup and qos else 0) | (qos << 1) | int(retain)
    for protocol in (MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv5):
        mqtt5 = protocol is MQTTProtocolVersion.MQTTv5
        properties = mqtt5_properties(content_type, user) if mqtt5 else None
        body = publish_body(topic, payload, qos, mid, properties)
        theirs = _packet.decode_publish(header, bytearray(body), protocol)
        ours = decode_publish(header, body, mqtt5)
        assert ours == (theirs.topic, theirs.payload, theirs.qos, theirs.retain, theirs.mid)
        # The same packet in the middle of a buffer of several.
        framed = b"junk" + body + b"more"
        assert decode_publish(header, framed, mqtt5, 4, 4 + len(body)) == ours


@pytest.mark.parametrize("mqtt5", [False, True])
def test_a_packet_shorter_than_its_lengths_is_refused(mqtt5: bool) -> None:
    body = publish_body(b"anxin/v1/d/sos", b"{}", 1, 7, b"\x00" if mqtt5 else None)
    for cut in (1, 3, 15, 17):
        with pytest.raises(MalformedPublishError):
            decode_publish(0x32, body[:cut], mqtt5)
    with pytest.raises(MalformedPublishError):
        decode_publish(0x30, struct.pack("!H", 0) + b"{}", mqtt5)  # no topic
