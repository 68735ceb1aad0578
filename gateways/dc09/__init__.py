"""The SIA DC-09 receiver: alarm panels and telecare hubs reporting to anxin over IP.

Pure, sans-I/O modules (``crc``, ``framing``, ``frames``, ``crypto``, ``content``,
``replies``, ``codes``, ``receiver``) and one with I/O (``server``). The protocol facts are in
docs/dc09-receiver.md.
"""
