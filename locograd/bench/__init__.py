"""Speed and memory of locograd's steps against PyTorch and the machine's matmul rate.

Run ``locograd bench --help`` (or ``python -m benchmarks --help`` in a source
checkout); :func:`main` is the entry point (``main(argv) -> exit status``),
:mod:`locograd.bench.model` says what is counted, :mod:`locograd.bench.steps`
what is timed, :mod:`locograd.bench.worker` how.  Results of the development
machine: ``benchmarks/RESULTS.md`` in the repository.
"""

from .run import main

__all__ = ["main"]
