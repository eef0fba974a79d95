"""``python -m benchmarks``."""

import sys

from .run import main

raise SystemExit(main(sys.argv[1:]))
