"""Ingest: the MQTT subscriber and downlink, the pipeline that carries out decisions."""
