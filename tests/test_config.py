"""The config surface: every file under configs/ loads into its class; defaults, `extends:` chains and `--set`
overrides."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ecrs.config import ConfigError, load_config, read_config
from ecrs.recipes.evaluate import EvaluateConfig
from ecrs.training.generator import GeneratorTrainConfig
from ecrs.training.recommender import RecommenderTrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"

# configs/ path pattern -> the class its files load into (what `ecrs <command> --config` reads them as)
CONFIG_CLASSES: dict[str, type] = {
    "recommender/*.yaml": RecommenderTrainConfig,
    "generator/*.yaml": GeneratorTrainConfig,
    "evaluate_recommenders*.yaml": EvaluateConfig,
}


def _config_files() -> list[str]:
    return sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", _config_files())
def test_every_config_file_loads_into_its_class(name: str) -> None:
    classes = [cls for pattern, cls in CONFIG_CLASSES.items() if fnmatch.fnmatch(name, pattern)]
    assert len(classes) == 1, f"configs/{name}: no config class known for it; add its pattern to CONFIG_CLASSES"
    assert isinstance(load_config(classes[0], CONFIGS / name), classes[0])


def test_every_config_class_pattern_matches_a_file() -> None:
    for pattern in CONFIG_CLASSES:
        assert fnmatch.filter(_config_files(), pattern), pattern


@pytest.mark.parametrize("name", [n for n in _config_files() if fnmatch.fnmatch(n, "recommender/[!_]*.yaml")])
def test_recommender_rows_state_their_name_and_dataset(name: str) -> None:
    # `ecrs reproduce` and benchmarks/gpu_fast_sweep.sh read these two from the row's own file, not its bases.
    raw = yaml.safe_load((CONFIGS / name).read_text())
    assert raw["name"] and raw["data"]["dataset"]


# ---------------------------------------------------------------- layers: defaults, files (extends), overrides

@dataclass
class Loop:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Run:
    name: str = "base"
    tags: list[str] = field(default_factory=list)
    train: Loop = field(default_factory=Loop)


def test_defaults_then_the_file_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 0.5\n")
    cfg = load_config(Run, p, ["train.steps=3", "tags=[a, b]"])
    assert cfg == Run(name="base", train=Loop(lr=0.5, steps=3), tags=["a", "b"])


@pytest.mark.parametrize("override,match", [
    ("trian.lr=1", "unknown key 'trian'"),
    ("train.lrr=1", "unknown key 'lrr'"),
    ("train.steps=1.5", "expected an integer"),
    ("name=3", "expected a string"),
])
def test_unknown_keys_and_bad_types_are_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(Run, None, [override])


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_extends_overrides_and_deep_merges(tmp_path: Path) -> None:
    _write(tmp_path, {"base.yaml": "name: b\ntags: [x, y]\ntrain: {lr: 0.5, steps: 3}\n",
                      "row.yaml": "extends: base.yaml\ntags: [z]\ntrain: {steps: 7}\n"})
    # mappings merge key by key; a list or a value replaces the parent's
    assert load_config(Run, tmp_path / "row.yaml") == Run(name="b", tags=["z"], train=Loop(lr=0.5, steps=7))
    assert read_config(tmp_path / "row.yaml") == {"name": "b", "tags": ["z"], "train": {"lr": 0.5, "steps": 7}}


def test_extends_chains_relative_to_each_file(tmp_path: Path) -> None:
    _write(tmp_path, {"bases/root.yaml": "name: root\ntrain: {lr: 0.1}\n",
                      "bases/mid.yaml": "extends: root.yaml\ntrain: {steps: 2}\n",
                      "rows/leaf.yaml": "extends: ../bases/mid.yaml\nname: leaf\n"})
    assert load_config(Run, tmp_path / "rows/leaf.yaml") == Run(name="leaf", train=Loop(lr=0.1, steps=2))


def test_overrides_merge_over_the_chain(tmp_path: Path) -> None:
    _write(tmp_path, {"base.yaml": "train: {lr: 0.5, steps: 3}\n", "row.yaml": "extends: base.yaml\n"})
    cfg = load_config(Run, tmp_path / "row.yaml", ["train.steps=9", "tags=[a, b]", "train.lr=1e-2"])
    assert cfg == Run(tags=["a", "b"], train=Loop(lr=0.01, steps=9))


@pytest.mark.parametrize("files,match", [
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"},
     r"a.yaml: extends cycle \(a.yaml -> b.yaml -> a.yaml\)"),
    ({"a.yaml": "extends: a.yaml\n"}, "extends cycle"),
    ({"a.yaml": "extends: nope.yaml\n"}, "a.yaml: extends 'nope.yaml', which is not found"),
    ({"a.yaml": "extends: [b.yaml]\n"}, "extends must name one YAML file"),
    # an error in a parent names the parent
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "train: {lrr: 1}\n"}, r"b.yaml.train: unknown key 'lrr'"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: c.yaml\n", "c.yaml": "nmae: x\n"},
     r"c.yaml: unknown key 'nmae'"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "train: {steps: many}\n"}, r"b.yaml.train.steps: expected an integer"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "train: [1]\n"}, r"b.yaml.train: expected a mapping"),
    ({"a.yaml": "extends: b.yaml\ntrain: [1]\n", "b.yaml": "train: {steps: 1}\n"}, r"a.yaml: .*merge"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "train: {steps: [1\n"}, r"b.yaml: invalid YAML"),
    ({"a.yaml": "- 1\n"}, r"a.yaml: top level must be a mapping"),
])
def test_extends_errors_are_one_line_config_errors(tmp_path: Path, files: dict[str, str], match: str) -> None:
    _write(tmp_path, files)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(Run, tmp_path / "a.yaml")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("override,match", [
    ("train.lrr=1", r"^--set.train: unknown key 'lrr'"),
    ("name=[1", r"^--set name=\[1: "),
    ("name", "must look like key.sub=value"),
])
def test_override_errors_say_they_come_from_set(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        load_config(Run, None, [override])
    assert "\n" not in str(e.value)


def test_override_values_are_yaml() -> None:
    cfg = load_config(Run, None, ["name=ecr-fast:artifacts/{dataset}/x-s*", "tags=[a, 'b c', '${x}']",
                                  "train.lr=1e-3"])
    # no OmegaConf interpolation: `${x}` stays as written
    assert cfg == Run(name="ecr-fast:artifacts/{dataset}/x-s*", tags=["a", "b c", "${x}"], train=Loop(lr=0.001))
