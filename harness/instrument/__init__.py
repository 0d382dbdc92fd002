"""Instrumentation records written from inside a live server, and their reader."""
