"""``python -m benchmarks`` (the same as ``locograd bench``): the code lives in :mod:`locograd.bench`.

This folder holds the results measured on the development machine
(``RESULTS.md``, ``results/*.json``).
"""

from locograd.bench import main

__all__ = ["main"]
