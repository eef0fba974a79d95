r"""Run folders that never hold two runs and never lie: the lock, atomic writes, one reader.

* :class:`FolderLock`: an OS lock (``fcntl.flock``) on ``FOLDER/.lock``, held
  while a run, a comparison or a study works in the folder.  The lock
  dies with its process, so a killed run never leaves a stale lock; a second
  run on the same folder fails at once with :class:`~locograd.errors.RunFolderError`.
* :func:`write_json_atomic`, :func:`write_text_atomic`: written to a temporary
  file in the same folder, flushed to disk, then renamed over the target.
* :func:`append_jsonl`: one JSON object per line, appended in one write and
  flushed to disk.
* :func:`read_jsonl`, :func:`read_json`: the ONE reader of a run's files; a
  torn line, a row without a required key or a file that is not JSON gets a
  :class:`~locograd.errors.RunFolderError` naming the file, the line and what is wrong.
* :data:`FOLDER_KINDS`: the one table of what a folder holds (a run, a comparison, a study) and
  the files that mark it; :func:`held_by` reads it, and :func:`check_run_folder` and
  :func:`runs_in` are the checks a run and a comparison make before writing.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> with FolderLock(folder):
...     append_jsonl(os.path.join(folder, "metrics.jsonl"), {"epoch": 0, "train_loss": 1.5})
>>> read_jsonl(os.path.join(folder, "metrics.jsonl"), required=("epoch",))
[{'epoch': 0, 'train_loss': 1.5}]
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from ..errors import RunFolderError

FOLDER_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "study": ("a study", ("spec.toml", "study.jsonl", "trials.jsonl")),
    "comparison": ("a comparison", ("compare.json", "summary.json")),
    "run": ("a run", ("checkpoint.npz", "metrics.jsonl", "config.json")),
}
"""What a folder can hold: kind -> (how messages name it, the files that mark it).  Checked in this
order: a study's folder also holds a ``summary.json``, and is a study's, never a comparison's."""

LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"
"""Every temporary file this module writes starts with this prefix (see :func:`remove_stale_temporaries`)."""


class FolderLock:
    """An exclusive OS lock on a folder (created if missing), as a context manager.

    Args:
        folder: the run or study folder.
        what: how the folder is called in the message (``"out"``, ``"study folder"``).

    Raises:
        RunFolderError: another process holds the lock (the message names the folder and its pid).
    """

    def __init__(self, folder: str, what: str = "out") -> None:
        self.folder = folder
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock (non-blocking); see the class docstring."""
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise RunFolderError(f"{self.what}: {self.folder} is a file, expected a folder")
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # before: a bare "[Errno 21] Is a directory: '.../.lock'"
            what = "is a folder" if os.path.isdir(path) else f"cannot be opened ({exc.strerror})"
            raise RunFolderError(
                f"{self.what}: the lock file {path} {what}; remove it if no locograd run uses {self.folder}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_pid(path)
            by = f" (process {holder})" if holder else ""
            raise RunFolderError(
                f"{self.what}: {self.folder} is in use by another locograd run{by}; "
                "wait for it to finish or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


@contextlib.contextmanager
def _temporary_beside(path: str, mode: str) -> Iterator[Any]:
    """A temporary file in ``path``'s folder, renamed over ``path`` on success, removed on failure."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + os.path.basename(path) + ".", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing, as open() makes them
        encoding = None if "b" in mode else "utf-8"
        with open(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    with _temporary_beside(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: str, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line in one ``write`` (``O_APPEND``), flushed to disk."""
    data = (json.dumps(row, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
    try:
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover (a full disk)
            raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str, what: str = "file") -> Any:
    """Read one JSON document; a missing or malformed file gets a :class:`RunFolderError` naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read the {what} ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def read_jsonl(path: str, required: Sequence[str] = (), *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """Read a JSON-lines file: one object per non-empty line, each holding the ``required`` keys.

    Args:
        path: the file.
        required: keys every row must hold.
        missing_ok: a missing file reads as no rows.

    Raises:
        RunFolderError: naming the file and the line: a torn last line (the file does
            not end in a newline: a write was cut), a line that is not a JSON object,
            or a row without a required key.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        if missing_ok:
            return []
        raise RunFolderError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read the file ({exc})") from None
    lines = text.split("\n")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = number == len(lines)  # the last piece has no newline after it
        row = _parse_line(path, number, line, torn, required)
        if row is not None:  # always (a torn line raised)
            rows.append(row)
    return rows


def _torn_message(path: str, number: int) -> str:
    return f"{path}: line {number}, the last, is cut short (a write was interrupted)"


def _parse_line(
    path: str, number: int, line: str, torn: bool, required: Sequence[str], torn_ok: bool = False
) -> dict[str, Any] | None:
    """One line of a JSON-lines file as a dict; ``None`` for a torn last line when ``torn_ok``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        if torn:
            if torn_ok:
                return None
            raise RunFolderError(_torn_message(path, number)) from None
        raise RunFolderError(f"{path}: line {number} is not valid JSON") from None
    if not isinstance(row, dict):
        raise RunFolderError(f"{path}: line {number} is not a JSON object")
    absent = [k for k in required if k not in row]
    if absent:
        raise RunFolderError(f"{path}: line {number} has no {absent[0]!r}")
    return row


@dataclasses.dataclass(frozen=True)
class JsonLines:
    """A JSON-lines file as :func:`scan_jsonl` reads it.

    Attributes:
        rows: the complete rows, in file order.
        lines: the line number (from 1) of each row.
        ends: the byte offset just past each row (its newline included): truncating
            the file there keeps exactly the rows up to that one, bytes unchanged.
        torn: the message naming a torn last line (not in ``rows``), or ``None``.
    """

    rows: list[dict[str, Any]]
    lines: list[int]
    ends: list[int]
    torn: str | None


def scan_jsonl(path: str, required: Sequence[str] = (), *, missing_ok: bool = False) -> JsonLines:
    """Like :func:`read_jsonl`, but a torn last line is reported in ``torn`` instead of raised.

    A caller that knows the torn line is one it may drop (a resumed run's row written
    after its checkpoint) truncates the file at ``ends[k]``; any other caller raises
    ``RunFolderError(torn)``.  Every other defect raises as in :func:`read_jsonl`.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if missing_ok:
            return JsonLines([], [], [], None)
        raise RunFolderError(f"{path}: no such file") from None
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read the file ({exc})") from None
    pieces = data.split(b"\n")
    result = JsonLines([], [], [], None)
    torn: str | None = None
    offset = 0
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)
        offset += len(piece) + (0 if last else 1)
        try:
            line = piece.decode("utf-8")
        except UnicodeDecodeError:
            if last:  # a multi-byte character cut by an interrupted write
                torn = _torn_message(path, number)
                break
            raise RunFolderError(f"{path}: line {number} is not UTF-8 text") from None
        if not line.strip():
            continue
        row = _parse_line(path, number, line, last, required, torn_ok=True)
        if row is None:
            torn = _torn_message(path, number)
            break
        result.rows.append(row)
        result.lines.append(number)
        result.ends.append(offset)
    return dataclasses.replace(result, torn=torn)


def open_atomic(path: str, binary: bool = True) -> contextlib.AbstractContextManager[Any]:
    """A file to write ``path`` through: a temporary beside it (named with :data:`TEMP_PREFIX`),
    flushed to disk and renamed over ``path`` when the block ends without an error, removed otherwise.

    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> with open_atomic(target) as handle:
    ...     _ = handle.write(b"data")
    >>> with open(target, "rb") as handle:
    ...     handle.read()
    b'data'
    """
    return _temporary_beside(path, "wb" if binary else "w")


def remove_stale_temporaries(folder: str) -> list[str]:
    """Delete temporary files left in ``folder`` by a process killed mid-write; returns their names.

    Call it only while holding the folder's :class:`FolderLock` (no live writer then exists).
    """
    removed: list[str] = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if name.startswith(TEMP_PREFIX) or (name.startswith(".checkpoint-") and name.endswith(".tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
            removed.append(name)
    return removed


__all__ = [
    "LOCK_NAME",
    "TEMP_PREFIX",
    "FolderLock",
    "JsonLines",
    "append_jsonl",
    "open_atomic",
    "read_json",
    "read_jsonl",
    "remove_stale_temporaries",
    "scan_jsonl",
    "write_json_atomic",
    "write_text_atomic",
]


def held_by(folder: str, kinds: Sequence[str] = tuple(FOLDER_KINDS)) -> tuple[str, str] | None:
    """``(what, file)`` for the first of ``kinds`` whose marking file ``folder`` holds, else ``None``.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "trials.jsonl"), "w").close()
    >>> held_by(folder), held_by(folder, ("run",))
    (('a study', 'trials.jsonl'), None)
    """
    for kind in kinds:
        what, files = FOLDER_KINDS[kind]
        for name in files:
            if os.path.exists(os.path.join(folder, name)):
                return what, name
    return None


def runs_in(folder: str) -> list[str]:
    """The subfolders of ``folder`` that hold a run, sorted."""
    return sorted(
        name
        for name in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, name)) and held_by(os.path.join(folder, name), ("run",))
    )


def check_run_folder(out: str, resume: bool) -> str:
    """The checkpoint path of the run folder ``out``, if ``out`` can take a run (new, or resumed with ``resume``).

    Creates nothing, so it can be called before the folder is locked (a bad folder fails before
    any data is read) and again under the lock, where the answer holds.

    Raises:
        RunFolderError: ``out`` is a file or holds a study or a comparison; ``resume`` without a
            checkpoint; a new run into a folder that holds a run.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"out: {out} is a file, expected a folder (new or holding a run to --resume)")
    other = held_by(out, ("study", "comparison"))
    if other:
        raise RunFolderError(f"out: {out} holds {other[0]} ({other[1]}), not one run; choose another --out")
    ckpt = os.path.join(out, "checkpoint.npz")
    present = held_by(out, ("run",))
    if resume and not os.path.isfile(ckpt):
        if present:  # a run writes its checkpoint first: these files are from a run that never reached it
            raise RunFolderError(
                f"resume: no checkpoint at {ckpt}, but {out} holds {present[1]} of a run that stopped before "
                "writing one; it can be neither resumed nor restarted, choose another --out"
            )
        raise RunFolderError(f"resume: no checkpoint at {ckpt}; start without --resume")
    if not resume and present:
        raise RunFolderError(
            f"out: {out} already holds a run; pass --resume to continue it, or choose another --out"
        )
    return ckpt
