"""Checking: live instrumentation records against the oracle."""
