r"""Trials: one training run each, keyed by a hash of its canonical settings, and the store that keeps them.

A trial's key is the SHA-256 (first 16 hex digits) of the canonical JSON of
everything that determines its numbers: the optimizer's resolved settings
(defaults filled in by :func:`~locograd.experiments.optimizers.settings`, so
``lr = 0.001`` and ``lr = 1e-3``, or a default spelled out or left out, give the
same key), the schedule, the model, the data (set, generation seed, training
and test images), the batch size, the dtype, the device, the seed, the epochs
and :data:`~locograd.study.NUMERICS_VERSION`.  Floats are canonicalised to 12
significant digits, names to lower case; keys are sorted.

The store, in the study folder ``OUT``:

* ``OUT/trials/KEY/``: the trial's run folder (``config.json``, ``metrics.jsonl``,
  ``checkpoint.npz`` written every epoch), written by
  :func:`locograd.experiments.training.train`;
* ``OUT/trials.jsonl``: one line per finished (or diverged) trial, appended
  atomically (:func:`~locograd.experiments.runfolder.append_jsonl`).

>>> a = trial_key({"settings": {"lr": 0.001, "optimizer": "Adam"}, "seed": 0})
>>> a == trial_key({"seed": 0, "settings": {"optimizer": "adam", "lr": 1e-3}})
True
>>> a == trial_key({"seed": 1, "settings": {"optimizer": "adam", "lr": 1e-3}})
False
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping
from typing import Any

from ..data.registry import is_file_name
from ..errors import RunFolderError
from ..experiments.config import RunConfig
from ..experiments.runfolder import append_jsonl, read_json, read_jsonl, write_json_atomic, write_text_atomic

PHASES = ("tuning", "final")
RECORD_FORMAT = 1
"""The layout of a ``trials.jsonl`` record, stamped on each as ``"format"``; bumped when it changes.

A record without the field (version 0) comes from a locograd before records were versioned.
A study folder holding records of another version is refused in one line, never rewritten."""


def canonical(value: Any) -> Any:
    """``value`` with floats rounded to 12 significant digits, strings lower case, tuples as lists."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, dict):
        return {str(k).strip().lower(): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    raise TypeError(f"trial: cannot canonicalise a {type(value).__name__}")


def trial_key(identity: dict[str, Any]) -> str:
    """The key of a trial: 16 hex digits of the SHA-256 of its canonical, key-sorted JSON."""
    text = json.dumps(canonical(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of a study.

    Attributes:
        key: :func:`trial_key` of ``identity``.
        name: for people: ``"curves/adam/tuning lr=0.001 seed 0"``.
        dataset, optimizer, phase: what it belongs to.
        point: the hyperparameters searched (axis name -> value).
        seed: initialisation and shuffling seed (the data are the same for every seed).
        identity: what the key hashes.
        run: the run, resolved once when planned (:class:`~locograd.experiments.config.RunConfig`;
            the worker sets its folder).
        data: how the worker loads the data: name, data_dir, limit_train, limit_test, data_seed.
    """

    key: str
    name: str
    dataset: str
    optimizer: str
    phase: str
    point: dict[str, Any]
    seed: int
    identity: dict[str, Any]
    run: RunConfig
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        """What a worker gets: the key, the name, the resolved run and how to load its data."""
        return {"key": self.key, "name": self.name, "run": self.run, "data": self.data}


class Store:
    """The trials of one study folder: the records of ``trials.jsonl`` and each trial's metrics.

    Args:
        out: the study folder.
        echo: called with one line for each note (a corrupt trial folder, a repaired file).
    """

    def __init__(self, out: str, echo: Any = print) -> None:
        self.out = out
        self.echo = echo
        self.path = os.path.join(out, "trials.jsonl")
        self.records: dict[str, dict[str, Any]] = {}
        self.appended: list[str] = []
        self._metrics: dict[str, list[dict[str, Any]]] = {}

    def folder(self, key: str) -> str:
        """``OUT/trials/KEY``."""
        return os.path.join(self.out, "trials", key)

    def load(self, repair: bool = True) -> None:
        """Read ``trials.jsonl`` (the last record of a key wins); ``repair=False`` reads without
        changing the file (a replay of a committed study).

        A line that cannot be used (a torn last line after a kill during the append,
        a line that is not JSON, a record without a key, a status other than
        ``finished``/``diverged``, a finished record without a finite final loss) is
        dropped from the file, with a note naming the file and line.  A record whose
        trial folder has no readable ``metrics.jsonl``, or one without the row of the
        record's last epoch, is dropped with a note naming the path, so that the trial
        runs again (rows past it are a continuation stopped before its record: successive
        halving's next rung, which resumes from the checkpoint).
        """
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{self.path}: cannot read the file ({exc})") from None
        lines = text.split("\n")
        _check_formats(self.path, lines)
        kept: list[str] = []
        dropped = 0
        seen: dict[tuple[str, Any], tuple[int, Any]] = {}  # (key, epochs) -> (line, final train loss)
        contradicted: set[str] = set()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            why = _bad_record(line)
            if why is None:
                row = json.loads(line)
                at = (row["key"], row.get("epochs"))
                first = seen.setdefault(at, (number, row.get("final_train_loss")))
                if first[1] != row.get("final_train_loss") and row["key"] not in contradicted:
                    # one trial trained to one epoch twice, with other numbers: neither line can be trusted
                    contradicted.add(row["key"])
                    self.echo(
                        f"study: {self.path}: lines {first[0]} and {number} give trial {row['key']} at epoch "
                        f"{row.get('epochs')} the final train losses {first[1]} and {row.get('final_train_loss')}; "
                        "dropped its records (the trial runs again)"
                    )
                kept.append(line)
                self.records[row["key"]] = row
                continue
            dropped += 1
            if number == len(lines):
                why = "is cut short (a write was interrupted)"
            self.echo(f"study: {self.path}: line {number} {why}; dropped it (its trial runs again)")
        if contradicted:
            kept = [k for k in kept if json.loads(k)["key"] not in contradicted]
            for key in contradicted:
                self.records.pop(key, None)
        if (dropped or contradicted) and repair:  # rewrite without the bad lines: the file stays readable
            write_text_atomic(self.path, "".join(k + "\n" for k in kept))
        for key in list(self.records):
            try:
                rows = self.metrics(key)
                record = self.records[key]
                reached = [r.get("epoch") for r in rows]
                if record["status"] == "finished" and record.get("epochs") not in reached:
                    raise RunFolderError(
                        f"{os.path.join(self.folder(key), 'metrics.jsonl')}: ends at epoch "
                        f"{rows[-1].get('epoch')}, but the record says {record.get('epochs')}"
                    )
                if record["status"] == "finished":
                    row = rows[reached.index(record["epochs"])]
                    if row.get("train_loss") != record.get("final_train_loss"):
                        raise RunFolderError(
                            f"{os.path.join(self.folder(key), 'metrics.jsonl')}: its train loss at epoch "
                            f"{record['epochs']} is {row.get('train_loss')}, but the record says "
                            f"{record.get('final_train_loss')}"
                        )
            except RunFolderError as exc:
                self.echo(f"study: trial {key} is corrupt ({exc}); it runs again")
                del self.records[key]
                self._metrics.pop(key, None)

    def matches(self, key: str, expected: Mapping[str, Any]) -> str | None:
        """``None`` if the trial folder's ``config.json`` agrees with ``expected`` (the planned
        trial's config), else why not.  A folder without ``config.json`` (never written) agrees."""
        path = os.path.join(self.folder(key), "config.json")
        if not os.path.isfile(path):
            return None
        try:
            written = read_json(path, "trial config")
        except RunFolderError as exc:
            return str(exc)
        given = written.get("settings") if isinstance(written, dict) else None
        if not isinstance(given, dict):
            return f"{path}: holds no settings"
        for name, value in expected.items():
            if name == "epochs":
                continue  # a run trained further is the same trial (successive halving's rungs)
            if name == "dataset" and is_file_name(value):
                continue  # where a file is, not what it holds: the key carries its content's digest
            if name in given and canonical(given[name]) != canonical(value):
                if name == "optimizer" and canonical(str(given[name]).replace("_", "-")) == canonical(value):
                    continue
                return (
                    f"{path}: {name} is {given[name]!r}, but the trial has {value!r} (another trial's folder)"
                )
        return None

    def forget(self, key: str, why: str) -> None:
        """Drop the record of ``key`` and clear its folder: the trial runs again from scratch."""
        self.echo(f"study: trial {key} is corrupt ({why}); it runs again")
        self.records.pop(key, None)
        self._metrics.pop(key, None)
        clear_folder(self.folder(key))

    def done(self, key: str, epochs: int | None = None) -> bool:
        """Whether ``key`` has a record: diverged (never run again), or finished (at ``epochs`` or
        beyond, where given: a successive-halving survivor trained to a rung is done up to it)."""
        record = self.records.get(key)
        if record is None:
            return False
        return epochs is None or record["status"] != "finished" or record.get("epochs", 0) >= epochs

    def drop_checkpoint(self, key: str) -> None:
        """Delete a trial's checkpoint (a point successive halving eliminated: it never continues)."""
        path = os.path.join(self.folder(key), "checkpoint.npz")
        if os.path.isfile(path):
            os.unlink(path)

    def metrics(self, key: str) -> list[dict[str, Any]]:
        """The ``metrics.jsonl`` rows of a trial (cached); :class:`RunFolderError` if missing or torn."""
        if key not in self._metrics:
            path = os.path.join(self.folder(key), "metrics.jsonl")
            rows = read_jsonl(path, required=("epoch", "train_loss", "test_loss", "seconds"))
            if not rows:
                raise RunFolderError(f"{path}: holds no rows")
            self._metrics[key] = rows
        return self._metrics[key]

    def add(
        self,
        record: dict[str, Any],
        metrics: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        """Record a finished trial: append to ``trials.jsonl``.

        ``metrics`` and ``config`` (from a worker without the shared folder) are written
        into the trial folder first (atomically, through the run-folder module).
        """
        record = {"format": RECORD_FORMAT, **record}
        key = record["key"]
        if metrics is not None:
            folder = self.folder(key)
            clear_folder(folder)
            os.makedirs(folder, exist_ok=True)
            write_text_atomic(
                os.path.join(folder, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in metrics)
            )
            if config is not None:
                write_json_atomic(os.path.join(folder, "config.json"), config)
        self._metrics.pop(key, None)
        append_jsonl(self.path, record)
        self.records[key] = record
        self.appended.append(key)

    def config(self, key: str) -> Any:
        """The trial's ``config.json``."""
        return read_json(os.path.join(self.folder(key), "config.json"), "trial config")


def _check_formats(path: str, lines: list[str]) -> None:
    """Refuse records of another format version (before anything is dropped or rewritten).

    Raises:
        RunFolderError: ``"OUT/trials.jsonl: line 1 is a trial record of format version 0 (no
            'format' field); this locograd reads version 1 only: ..."``.
    """
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn or foreign line: _bad_record's business
        if not isinstance(row, dict) or not isinstance(row.get("key"), str):
            continue
        version = row.get("format", 0)
        if version != RECORD_FORMAT or isinstance(version, bool):
            origin = " (no 'format' field)" if "format" not in row else ""
            raise RunFolderError(
                f"{path}: line {number} is a trial record of format version {version!r}{origin}; "
                f"this locograd reads version {RECORD_FORMAT} only: run the study into a new --out folder"
            )


def _bad_record(line: str) -> str | None:
    """Why a line of ``trials.jsonl`` cannot be used, or ``None``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return "is not JSON"
    if not isinstance(row, dict):
        return "is not a JSON object"
    if not isinstance(row.get("key"), str) or not row["key"]:
        return "has no trial key"
    if row.get("status") not in ("finished", "diverged"):
        return f"has the status {row.get('status')!r}, expected finished or diverged"
    if row["status"] == "finished":
        loss = row.get("final_train_loss")
        if isinstance(loss, bool) or not isinstance(loss, int | float) or not math.isfinite(loss):
            return f"has the final train loss {loss!r}, expected a finite number"
    return None


def clear_folder(folder: str) -> None:
    """Delete the files of a trial folder (not its lock file), so that it restarts from scratch."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name == ".lock":
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


__all__ = ["PHASES", "RECORD_FORMAT", "Store", "Trial", "canonical", "clear_folder", "trial_key"]
