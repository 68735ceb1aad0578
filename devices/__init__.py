"""Devices: the MQTT topic grammar, payloads, codecs and the registry of devices.

This package imports nothing else of anxin's; every other package may import it.
"""
