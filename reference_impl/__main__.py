"""`python -m reference_impl ...`."""

import sys

from reference_impl.cli import main

sys.exit(main())
