"""`python -m engine.cli` runs `moor` (useful before the package is installed)."""

from engine.cli.main import main

main()
