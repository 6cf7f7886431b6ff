"""The matching service's entry points: its Kafka subscribers (`subscribers.py`)."""
