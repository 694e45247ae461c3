"""Publishing: MQTT with its outbox, the embedded broker, Home Assistant discovery, the sink dispatcher."""
