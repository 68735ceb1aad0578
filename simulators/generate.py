"""A scenario's traffic in virtual time, as a subscriber of the broker would record it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from devices.topics import DEFAULT_PREFIX
from simulators.scenario import Scenario
from simulators.traffic import LinkChange, TrafficLine, TrafficMessage
from simulators.virtual_devices import Encoder, fleet_stream


def scenario_traffic(
    scenario: Scenario, prefix: str = DEFAULT_PREFIX, counts: Counter[str] | None = None
) -> Iterator[TrafficLine]:
    """Every message of the scenario in time order, with ``ts`` the virtual time. Retained
    messages are written as a subscriber receives them while connected: not retained."""
    encoder = Encoder(prefix, scenario.devices)
    links = sorted(scenario.links, key=lambda link: link.time)
    stream = fleet_stream(
        scenario.plans, scenario.seed, scenario.start, scenario.end, scenario.zone
    )
    for emission in stream:
        while links and links[0].time <= emission.at:
            yield links.pop(0)
        message = encoder.encode(emission, emission.at)
        if message is None:
            continue  # a Zigbee device has no way to say it
        if counts is not None:
            counts[emission.event_type or emission.kind.value] += 1
        yield TrafficMessage(
            time=emission.at,
            topic=message[0],
            payload=message[1],
            qos=emission.qos,
            retain=False,
        )
    yield from (LinkChange(time=link.time, up=link.up) for link in links)
