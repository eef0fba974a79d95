"""Speed and memory of locograd's steps against PyTorch and the machine's matmul rate.

Run ``python -m benchmarks --help``; :func:`main` is the entry point
(``main(argv) -> exit status``), :mod:`benchmarks.model` says what is counted,
:mod:`benchmarks.steps` what is timed, :mod:`benchmarks.worker` how.
Results of the development machine: ``benchmarks/RESULTS.md``.
"""

from .run import main

__all__ = ["main"]
