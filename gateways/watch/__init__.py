"""The 4G watch gateway: the bracketed "3G / SeTracker" TCP protocol to anxin's MQTT contract.

docs/watch-gateway.md has what is supported and why; the codec modules (frames, messages,
translate, downlinks) are pure and sans-I/O, server.py is the asyncio shell.
"""
