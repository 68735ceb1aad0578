"""Alerting: the pure rules engine, the alert lifecycle and the alert store."""
