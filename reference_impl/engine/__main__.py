"""`python -m reference_impl.engine`: start the reference MoE server."""

from reference_impl.engine.cli import main

raise SystemExit(main())
