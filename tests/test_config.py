"""Config dataclasses: from_dict with unknown-key suggestions and type checks, override, TOML out and in."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from genbench.config import ConfigError, dumps_toml, from_dict, load_toml, override, to_dict


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    name: str = "adam"


@dataclass(frozen=True)
class Train:
    steps: int = 100
    optim: Optim = field(default_factory=Optim)
    amp: bool = False


@dataclass(frozen=True)
class Model:
    hidden: tuple[int, ...] = (64, 64)
    activation: Literal["relu", "tanh"] = "relu"
    dropout: float | None = None
    train: Train = field(default_factory=Train)
    extra: dict[str, Any] = field(default_factory=dict)
    label: str = "m"


def test_from_dict_builds_nested_and_coerces():
    m = from_dict(Model, {"hidden": [8, 16, 32], "train": {"steps": 5, "optim": {"lr": 1, "betas": [0.5, 0.9]}},
                          "dropout": 0, "extra": {"k": [1, 2]}})
    assert m == Model(hidden=(8, 16, 32), dropout=0.0, train=Train(steps=5, optim=Optim(lr=1.0, betas=(0.5, 0.9))),
                      extra={"k": [1, 2]})
    assert isinstance(m.train.optim.lr, float) and isinstance(m.dropout, float) and isinstance(m.hidden, tuple)
    assert from_dict(Train, {"steps": 10.0}).steps == 10  # an integral float is an integer (TOML 1e3 etc.)
    assert from_dict(Model, {"dropout": None}).dropout is None
    assert from_dict(Model, {}) == Model()


def test_unknown_key_suggests_and_lists_accepted():
    with pytest.raises(ConfigError) as e:
        from_dict(Model, {"hiden": [1]})
    assert str(e.value) == ("Model: unknown key 'hiden'. Did you mean: hidden? Accepted keys: hidden, activation, "
                            "dropout, train, extra, label")
    with pytest.raises(ConfigError, match=r"Model\.train\.optim: unknown key 'betaz'\. Did you mean: betas\?"):
        from_dict(Model, {"train": {"optim": {"betaz": [0.1, 0.2]}}})
    with pytest.raises(ConfigError, match="unknown key 'zzz'. Accepted keys"):  # nothing close: no "Did you mean"
        from_dict(Optim, {"zzz": 1})
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "d, msg",
    [
        ({"label": 3}, r"Model\.label: expected a string, got 3"),
        ({"train": {"steps": "10"}}, r"Model\.train\.steps: expected an integer, got '10'"),
        ({"train": {"steps": 2.5}}, r"Model\.train\.steps: expected an integer, got 2.5"),
        ({"train": {"steps": True}}, r"expected an integer, got True"),
        ({"train": {"amp": 1}}, r"Model\.train\.amp: expected true or false, got 1"),
        ({"train": {"optim": {"lr": "fast"}}}, r"Model\.train\.optim\.lr: expected a number, got 'fast'"),
        ({"train": {"optim": {"lr": False}}}, r"expected a number, got False"),
        ({"train": {"optim": {"betas": [0.9]}}}, r"Model\.train\.optim\.betas: expected 2 values, got 1"),
        ({"hidden": 64}, r"Model\.hidden: expected a list, got 64"),
        ({"hidden": [64, "x"]}, r"Model\.hidden: expected an integer, got 'x'"),
        ({"activation": "gelu"}, r"Model\.activation: expected one of 'relu', 'tanh', got 'gelu'"),
        ({"dropout": "0.1"}, r"Model\.dropout: expected a number, got '0.1'"),
        ({"train": 5}, r"Model\.train: expected a table, got 5"),
        ({"extra": [1]}, r"Model\.extra: expected a table"),
    ],
)
def test_type_errors_name_the_key_and_expectation(d, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(Model, d)


def test_from_dict_needs_a_dataclass_and_required_fields():
    with pytest.raises(TypeError, match="not a dataclass"):
        from_dict(dict, {})

    @dataclass(frozen=True)
    class Req:
        n: int

    with pytest.raises(ConfigError, match="Req: .*missing 1 required"):
        from_dict(Req, {})


def test_override_nested_values_keeps_siblings():
    base = Model(label="base", train=Train(steps=7, optim=Optim(lr=0.1, name="sgd")), extra={"a": 1})
    new = override(base, {"train": {"optim": {"lr": 0.5}}})
    # only the overridden leaf changes; its siblings at every depth keep the base's values
    assert new == dataclasses.replace(base, train=Train(steps=7, optim=Optim(lr=0.5, name="sgd")))
    assert override(base, {"train": {"steps": 9}}).train == Train(steps=9, optim=Optim(lr=0.1, name="sgd"))
    assert override(base, {"label": "x", "hidden": [3]}) == dataclasses.replace(base, label="x", hidden=(3,))
    assert override(base, {"extra": {"b": 2}}).extra == {"a": 1, "b": 2}
    assert override(base, {}) == base
    assert base.train.optim.lr == 0.1  # frozen input untouched
    with pytest.raises(ConfigError, match=r"Model\.train: unknown key 'stepz'"):
        override(base, {"train": {"stepz": 1}})
    with pytest.raises(ConfigError, match=r"vae\.model\.train\.optim\.lr: expected a number"):
        override(base, {"train": {"optim": {"lr": "x"}}}, where="vae.model")


def test_to_dict_is_plain_data():
    d = to_dict(Model(dropout=0.2))
    assert d == {"hidden": [64, 64], "activation": "relu", "dropout": 0.2,
                 "train": {"steps": 100, "optim": {"lr": 1e-3, "betas": [0.9, 0.999], "name": "adam"}, "amp": False},
                 "extra": {}, "label": "m"}
    assert from_dict(Model, d) == Model(dropout=0.2)


def test_dumps_toml_round_trips_through_tomllib():
    cfg = Model(hidden=(1, 2), dropout=0.25, label='quote " and \\ back\nslash', extra={"k": [1.5, True], "a.b": "c"},
                train=Train(steps=3, optim=Optim(lr=1e-20, betas=(0.5, 0.75))))
    d = to_dict(cfg)
    text = dumps_toml(d)
    back = tomllib.loads(text)
    assert back == d
    assert from_dict(Model, back) == cfg
    # tables come after the scalars of their parent
    assert text.index("label =") < text.index("[train]") < text.index("[train.optim]")


def test_dumps_toml_leaves_out_none_and_handles_awkward_values():
    d = {"a": None, "b": 1, "c": {"d": None, "e": "x"}, "f": [[1, 2], [3]], "g": [{"h": 1}], "i": -0.5,
         "j": float("inf"), "k": {}, "l": {"m": {"n": 1}}}
    back = tomllib.loads(dumps_toml(d))
    assert back == {"b": 1, "c": {"e": "x"}, "f": [[1, 2], [3]], "g": [{"h": 1}], "i": -0.5, "j": float("inf"),
                    "k": {}, "l": {"m": {"n": 1}}}


def test_dumps_toml_escapes_control_characters_and_non_ascii_keys():
    d = {"s": "tab\there\rcr\x01ctl\x7fdel é", "clé": 1, "sp ace": 2, "": 3, "ok_key-1": 4}
    assert tomllib.loads(dumps_toml(d)) == d


def test_dumps_toml_rejects_unwritable_values():
    with pytest.raises(ConfigError, match="cannot write object to TOML"):
        dumps_toml({"x": object()})


def test_load_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(dumps_toml(to_dict(Train(steps=4))))
    assert from_dict(Train, load_toml(p)) == Train(steps=4)
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "missing.toml")
    p.write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML \(.*line 1"):
        load_toml(p)
    p.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))  # not UTF-8
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML \(.*utf-8"):
        load_toml(p)
