"""`python -m tests.conformance`: run docker-py's own integration suite against moord."""

from tests.conformance.runner import main

raise SystemExit(main())
