"""The exception types of locograd, caught by type (never by the text of a message).

Every message is ONE line that names the argument, file or folder involved and
says what was expected (line breaks given are folded into spaces), so that the
command line can print it as ``locograd: error: <message>``.

* :class:`NonFiniteError`: a NaN or an infinity where finite numbers are needed
  (a checker's input, a gradient, an optimizer step, a loss).
* :class:`NotPositiveDefiniteError`: a damped curvature factor that has no
  Cholesky factor (the damping is too small for the statistics it damps).
* :class:`StateMismatchError`: an optimizer state that does not fit the
  parameters it is used with (another network, optimizer or dtype).
* :class:`RunFolderError`: a run or study folder that is in use, holds another
  run, or holds a file that cannot be read as what it should be.

>>> issubclass(NonFiniteError, ValueError), issubclass(RunFolderError, RuntimeError)
(True, True)
>>> str(RunFolderError("runs/a: in use\\nby pid 7"))
'runs/a: in use by pid 7'
"""

from __future__ import annotations


class _OneLine:
    """Mixin: the message is folded into one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # type: ignore[call-arg]


class NonFiniteError(_OneLine, ValueError):
    """A NaN or infinity where finite values are required (an input, a gradient, a step, a loss)."""


class NotPositiveDefiniteError(_OneLine, ValueError):
    """A damped curvature factor (K-FAC, FOOF) that is not symmetric positive definite: a numerical
    breakdown of the method at this damping, like a non-finite step (training calls it a divergence)."""


class StateMismatchError(_OneLine, ValueError):
    """An optimizer state whose structure, shapes or dtype do not fit the parameters."""


class RunFolderError(_OneLine, RuntimeError):
    """A run folder that is locked by another run, holds another run, or holds an unreadable file."""


__all__ = ["NonFiniteError", "NotPositiveDefiniteError", "RunFolderError", "StateMismatchError"]
