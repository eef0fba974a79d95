"""``python -m benchmarks``."""

import sys

from locograd.bench import main

raise SystemExit(main(sys.argv[1:]))
