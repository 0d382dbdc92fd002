"""Serving: launch the server in its own process group, read its log, lock the GPU, pin cores, stop it."""
