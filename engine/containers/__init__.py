"""Containers: records, names, the lifecycle state machine and its supervision."""
