"""Measuring: the BS=1 streaming client and the server's /metrics."""
