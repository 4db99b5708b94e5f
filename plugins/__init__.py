"""Pluggy hook specifications and the plugin manager for drivers (network, volume, log)."""
