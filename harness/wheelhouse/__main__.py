"""`python -m harness.wheelhouse ...` (same as `harness wheelhouse ...`)."""

import sys

from harness.wheelhouse import main

raise SystemExit(main(sys.argv[1:]))
