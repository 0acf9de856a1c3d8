"""Wiring: configuration, Services and packaging."""
