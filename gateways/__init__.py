"""Edge translators: device protocols that are not MQTT, spoken into anxin's MQTT contract."""
