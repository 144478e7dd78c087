"""``python -m handlers [worker|failed|runs] ...``: the worker-side commands without the console script."""

from __future__ import annotations

import sys

from handlers.cli import main

sys.exit(main(sys.argv[1:]))
