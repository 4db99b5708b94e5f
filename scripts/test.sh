#!/usr/bin/env bash
# Run every check CI runs (as root on a Debian 12 machine): install what the tests
# need, then ruff, mypy and the tests (unit and integration, against real crun,
# conmon, overlayfs and a moord per session, driven by the docker CLI and SDK).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
