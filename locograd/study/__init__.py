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

NUMERICS_VERSION = 1
"""Part of every trial's key (with :data:`NUMERICS_VERSIONS`, per method family).  Bump it, on
purpose, with any change that alters every method's trained numbers (initialisation, shuffling,
data generation): the old trials then no longer match and run again.  Not the package version
(which does not change) and not the commit (which would invalidate every trial at every commit)."""

NUMERICS_VERSIONS: dict[str, int] = {"locoprop": 2}
"""The numerics version of a method family where it differs from :data:`NUMERICS_VERSION`: bump a
family's entry (or add one) with a change of that family's arithmetic alone, so that only its
trials run again.  ``locoprop`` 2: the local problems solved in the displacement from the anchor
(float32 numbers of LocoProp-S and -M changed; float64 ones in the last bits)."""


def numerics_version(optimizer: str) -> int:
    """The numerics version in the key of a trial of ``optimizer`` (a name like ``locoprop-m``).

    Its family is the name up to the first ``-`` (``locoprop-s`` and ``locoprop-m``: ``locoprop``).

    >>> numerics_version("locoprop-m"), numerics_version("adam")
    (2, 1)
    """
    return NUMERICS_VERSIONS.get(optimizer.split("-", 1)[0], NUMERICS_VERSION)


from .protocol import run_study  # noqa: E402
from .spec import SpecError, StudySpec, load, parse  # noqa: E402

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
