"""Adapters of the matching service: its Postgres read model, and the engine behind the port."""
