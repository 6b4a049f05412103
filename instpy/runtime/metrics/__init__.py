"""Prometheus text exposition of governance statistics, and an opt-in loopback listener."""
