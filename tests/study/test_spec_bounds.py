"""A study spec is checked whole before any trial and before its folder is written: names that
would break files or tables, seeds and trials without bound, models that cannot fit in memory, a
table named after one optimizer training another, a limit past a named set's size (each with its
control)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from locograd.study import SpecError, parse

BASE: dict[str, Any] = {
    "final": {"epochs": 3, "seeds": 2},
    "datasets": {"curves": {}},
    "optimizers": {"adam": {"lr": [1e-3]}},
}


def _with(**top: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(BASE))
    for key, value in top.items():
        if key.startswith("opt_"):
            spec["optimizers"][key[4:].replace("_", "-")] = value
        else:
            spec[key] = value
    return spec


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {**BASE, "optimizers": {"a/b": {"base": "adam"}}},
            r"^optimizers.a/b: expected an optimizer table name of at most 64",
        ),
        (
            {**BASE, "optimizers": {"a|b": {"base": "adam"}}},
            r"^optimizers.a\|b: expected an optimizer table name",
        ),
        (
            {**BASE, "optimizers": {"a\nb": {"base": "adam"}}},
            r"^optimizers.a\nb: expected an optimizer table name",
        ),
        (_with(name="x" * 300), r"^name: expected a study name of at most 64 .*\(300 characters\)"),
        (  # the key path shortened too: one readable line, not the name twice
            {**BASE, "optimizers": {"o" * 300: {"base": "adam"}}},
            r"^optimizers.o{20}\.\.\. \(300 characters\): expected an optimizer table name .*"
            r"got \"o{20}\.\.\. \(300 characters\)\"$",
        ),
        (_with(final={"epochs": 3, "seeds": 10**9}), r"^final.seeds: expected an integer in \[1, 100\]"),
        (
            _with(opt_adam={"lr": [1e-3], "seeds": 101}),
            r"^optimizers.adam.seeds: expected an integer in \[1, 100\]",
        ),
        (
            _with(opt_big={"base": "adam", "widths": [10**8, 6]}),
            r"^optimizers.big.widths: a model of 158,200,000,790 parameters needs about",
        ),
        (
            _with(opt_adam={"base": "sgd"}),
            r'^optimizers.adam.base: "sgd" would train another optimizer under the name \'adam\'',
        ),
        (
            {**BASE, "datasets": {"curves": {"limit_train": 10**12}}},
            r"^datasets.curves.limit_train: expected an integer in \[1, 20000\]",
        ),
        (
            {
                **BASE,
                "final": {"epochs": 9, "seeds": 100},
                "optimizers": {
                    f"adam-{i}": {"base": "adam", "lr": {"min": 1e-4, "max": 1e-2, "n": 100}}
                    for i in range(60)
                },
            },
            r"^optimizers: the spec plans 12000 trials .* more than 10000",
        ),
    ],
)
def test_a_spec_that_would_break_or_never_end_is_refused_in_one_line(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse(raw, name="s")


def test_the_controls_parse() -> None:
    assert parse(_with(opt_adam_v2={"base": "adam", "lr": [1e-3]}), name="s").optimizers[1].name == "adam-v2"
    assert parse(_with(name="x" * 64), name="s").name == "x" * 64
    assert parse(_with(final={"epochs": 3, "seeds": 100}), name="s").final_seeds == 100
    assert parse(_with(opt_small={"base": "adam", "widths": [100, 6]}), name="s").optimizers[1].widths == (
        100,
        6,
    )
    assert parse(_with(opt_adam={"base": "adam", "lr": [1e-3]}), name="s").optimizers[0].base == "adam"
    assert (
        parse({**BASE, "datasets": {"curves": {"limit_train": 20000}}}, name="s").datasets[0].limit_train
        == 20000
    )
