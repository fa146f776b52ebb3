"""Helpers for tests and benchmarks: real servers and network emulation on loopback."""
