"""Storing: result.json, the run manifest, --resume, and what `harness show` prints."""
