"""The one exception every data problem raises: :class:`DataError`.

>>> from locograd.data import DataError
>>> str(DataError("x.idx: bad magic\\nfix it"))
'x.idx: bad magic fix it'
>>> issubclass(DataError, ValueError)
True
"""

from __future__ import annotations

import operator
from typing import Any


class DataError(ValueError):
    """A data set could not be found, read or validated.

    The message is always ONE line that says what is wrong and what to do
    (the command line prints it as ``locograd: error: <message>``); line breaks
    in the message given are folded into single spaces.

    Args:
        message: What went wrong, with the path or argument involved, and the fix.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, or raise DataError unless it is an integer >= ``minimum``.

    Args:
        name: The argument's name, for the message.
        value: The value given (``bool`` is refused; NumPy integers are fine).
        minimum: The smallest value allowed.

    Returns:
        ``value`` as a Python int.

    Raises:
        DataError: Naming the argument, the expectation and the value.

    >>> check_int("n_train", 5, 1)
    5
    >>> check_int("n_train", 0, 1)
    Traceback (most recent call last):
    ...
    locograd.data.errors.DataError: n_train: expected an integer >= 1, got 0
    """
    if isinstance(value, bool):
        raise DataError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise DataError(
            f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}"
        ) from None
    if number < minimum:
        raise DataError(f"{name}: expected an integer >= {minimum}, got {number}")
    return number
