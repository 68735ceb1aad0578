"""anxin's protocol gateways: processes that speak a device protocol and the MQTT contract."""
