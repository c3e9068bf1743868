from dataclasses import dataclass, field
from typing import Literal

import pytest

from seqlab.config import (
    ConfigError,
    config_hash,
    flatten,
    from_dict,
    load_yaml,
    merge,
    parse_overrides,
    to_dict,
    to_yaml,
)
from seqlab.train import TrainConfig


@dataclass(frozen=True)
class Inner:
    width: int = 4
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None


def test_yaml_round_trip(tmp_path):
    cfg = Outer(name="y", inner=Inner(width=8, rate=0.1, kind="b", sizes=(3,)), limit=5)
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    assert from_dict(Outer, load_yaml(path)) == cfg


def test_unknown_key_names_the_dotted_path():
    with pytest.raises(ConfigError, match=r"'inner\.widht'.*valid keys: kind, rate, sizes, width"):
        from_dict(Outer, {"inner": {"widht": 3}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"inner": {"width": "wide"}}, r"inner\.width must be an integer, got 'wide'"),
        ({"inner": {"width": True}}, r"inner\.width must be an integer"),
        ({"inner": {"rate": "fast"}}, r"inner\.rate must be a number"),
        ({"inner": {"kind": "c"}}, r"inner\.kind must be one of 'a', 'b'"),
        ({"inner": {"sizes": 3}}, r"inner\.sizes must be a list"),
        ({"limit": "none"}, r"limit must be an integer"),
        ({"inner": 3}, r"inner\. must be a mapping|inner"),
    ],
)
def test_wrong_types_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, raw)


def test_ints_and_exponent_strings_are_accepted_for_floats_and_none_for_optionals():
    cfg = from_dict(Outer, {"inner": {"rate": 1}, "limit": None})
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.limit is None
    assert from_dict(Outer, {"inner": {"rate": "3e-4"}}).inner.rate == 3e-4


def test_validation_in_post_init_becomes_a_config_error_naming_the_section():
    @dataclass(frozen=True)
    class Wrapper:
        train: TrainConfig = field(default_factory=TrainConfig)

    with pytest.raises(ConfigError, match=r"train: lr must be > 0"):
        from_dict(Wrapper, {"train": {"lr": -1.0}})


def test_overrides_parse_yaml_scalars_into_nested_keys():
    assert parse_overrides(["train.lr=3e-4", "model.n_layers=2", "flag=true", "name=abc", "empty="]) == {
        "train": {"lr": "3e-4"},  # YAML 1.1 keeps this a string; typed loading makes it a float
        "model": {"n_layers": 2},
        "flag": True,
        "name": "abc",
        "empty": None,
    }


def test_malformed_override_is_named():
    with pytest.raises(ConfigError, match="'train.lr'.*key=value"):
        parse_overrides(["train.lr"])


def test_merge_is_deep():
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 5}}) == {"a": {"b": 1, "c": 5}, "d": 3}


def test_flatten_and_hash():
    flat = flatten(to_dict(Outer()))
    assert flat["inner.width"] == 4 and flat["inner.sizes"] == [1, 2]
    assert config_hash(Outer()) == config_hash(Outer())
    assert config_hash(Outer()) != config_hash(Outer(limit=1))


def test_load_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml must hold a mapping"):
        load_yaml(bad)
