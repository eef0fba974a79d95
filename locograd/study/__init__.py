r"""``locograd study``: the paper's comparison as a fair, seeded, resumable study.

A study spec (TOML, :mod:`locograd.study.spec`) names data sets, budgets and
optimizers with their search spaces.  :func:`run_study` runs one protocol for
every optimizer (:mod:`locograd.study.protocol`): tune every point of its
search space on a training subset, extend the search one step past an edge
where the best value sits on it, then train the best point with several
seeds on the whole training set.  Each training run is a *trial*
(:mod:`locograd.study.trials`), keyed by a hash of its canonical settings and
its method family's numerics version (:func:`numerics_version`), kept in ``OUT/trials/KEY/`` and recorded in
``OUT/trials.jsonl`` once finished: a study killed at any moment continues
where it stopped, and no finished trial ever runs twice.  Trials run on a local
process pool or on a Dask cluster (:mod:`locograd.study.execute`); the report
(:mod:`locograd.study.report`) writes ``report.md``, ``summary.json`` and
``figures/``.

Layering: ``study`` imports ``experiments`` (training, optimizers, models, run
folders); nothing below imports ``study``.
"""

from .numerics import NUMERICS_VERSION, NUMERICS_VERSIONS, numerics_version
from .protocol import run_study
from .spec import SpecError, StudySpec, load, parse

__all__ = [
    "NUMERICS_VERSION",
    "NUMERICS_VERSIONS",
    "SpecError",
    "StudySpec",
    "load",
    "numerics_version",
    "parse",
    "run_study",
]
