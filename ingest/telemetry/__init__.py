"""Telemetry to InfluxDB: points and line protocol, the stores (v1, v2), spool and writer."""
