"""The numerics versions in a trial's key: which code's arithmetic trained it, per method family."""

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
