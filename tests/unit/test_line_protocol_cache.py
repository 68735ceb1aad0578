"""The encoder's caches and number shortcuts change nothing: its output equals a plain encoder's,
written the obvious way below, for arbitrary points, however often names and values repeat."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from ingest.telemetry import points as encoder
from ingest.telemetry.points import (
    _KEY,
    _MEASUREMENT,
    _STRING,
    FieldValue,
    Point,
    encode_batch,
    encode_line,
    usable_key,
)


def plain_line(point: Point) -> str | None:
    """Line protocol with no cache and no shortcut: the specification the encoder must meet."""
    fields = []
    for name, value in point.fields.items():
        if not usable_key(name):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = f"{value}i"
        elif isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                continue
            text = repr(value)
        else:
            text = '"' + value.translate(_STRING) + '"'
        fields.append(f"{name.translate(_KEY)}={text}")
    if not fields:
        return None
    tags = "".join(
        f",{key.translate(_KEY)}={value.translate(_KEY)}"
        for key, value in sorted(point.tags.items())
        if value and usable_key(key)
    )
    return f"{point.measurement.translate(_MEASUREMENT)}{tags} {','.join(fields)} {point.time_ms}"


# Every character line protocol escapes or InfluxDB refuses, Chinese, and anything else.
SPECIAL = " ,=\"'\\\n\r\t#"
text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(SPECIAL)),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(codec="utf-8", exclude_characters="\x00"),
    ),
    max_size=12,
)
# A few names drawn again and again, so that later points meet what earlier ones cached.
names = st.one_of(st.sampled_from(["battery", "rssi", "seen", "time", "", "a b", "温度,x=1"]), text)
# Numbers whose cached text could be wrong: equal keys with different texts (0.0 and -0.0;
# 1, 1.0 and True), nan, infinities.
tricky = st.sampled_from([0.0, -0.0, 1, 1.0, True, False, 0, -1, math.nan, math.inf, -math.inf])
values: st.SearchStrategy[FieldValue] = st.one_of(
    tricky,
    st.floats(),  # nan and infinities included
    st.floats(min_value=-200, max_value=200).map(lambda x: round(x, 1)),  # readings repeat
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    text,
)
points = st.builds(
    Point,
    measurement=st.one_of(st.sampled_from(["heartbeat", "telemetry"]), text),
    tags=st.dictionaries(st.one_of(st.sampled_from(["community", "device_id"]), text), text),
    fields=st.dictionaries(names, values, max_size=5),
    time_ms=st.integers(min_value=0, max_value=2**53),
)


@contextmanager
def cache_bound(bound: int) -> Iterator[None]:
    """A small bound, so that the caches are emptied and refilled within one example."""
    with mock.patch.object(encoder, "CACHE_BOUND", bound):
        yield


@given(st.lists(points, max_size=20), st.sampled_from([2, 7, encoder.CACHE_BOUND]))
def test_cached_encoding_equals_the_plain_encoder(batch: list[Point], bound: int) -> None:
    with cache_bound(bound):
        for _ in range(2):  # the second time from the caches
            for point in batch:
                assert encode_line(point) == plain_line(point)
        expected = [line for line in map(plain_line, batch) if line is not None]
        encoded = encode_batch(batch)
        if not expected:
            assert encoded is None
        else:
            assert encoded is not None
            assert encoded.body == "\n".join(expected).encode()
            assert encoded.points == len(expected)


def test_the_caches_stay_within_their_bound() -> None:
    caches = (
        encoder._series_cache,
        encoder._prefix_cache,
        encoder._float_cache,
        encoder._int_cache,
    )
    for cache in caches:  # what earlier tests in this process left, under the real bound
        cache.clear()
    with cache_bound(10):
        for device in range(25):
            fields = {f"f{device}": device + 0.5, f"n{device}": device}
            point = Point("heartbeat", {"device_id": f"d-{device}"}, fields, 1)
            assert encode_line(point) == plain_line(point)
        assert all(0 < len(cache) <= 10 for cache in caches)


def test_equal_numbers_of_different_types_keep_their_own_text() -> None:
    line = encode_line(Point("m", {}, {"a": 1, "b": 1.0, "c": True, "d": 0.0, "e": -0.0}, 1))
    assert line == "m a=1i,b=1.0,c=true,d=0.0,e=-0.0 1"
    line = encode_line(Point("m", {}, {"e": -0.0, "d": 0.0, "c": True, "b": 1.0, "a": 1}, 1))
    assert line == "m e=-0.0,d=0.0,c=true,b=1.0,a=1i 1"
