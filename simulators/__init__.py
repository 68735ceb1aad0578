"""Simulators: virtual devices and fleets that publish over MQTT like the real ones."""
