"""The config surface: every file under configs/ loads into its class; defaults, `extends:` chains and `--set`
overrides; the CLI's per-command environment."""
from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ecrs import cli
from ecrs.config import ConfigError, _flat, load_config, read_config, to_dict
from ecrs.data.prepare import PrepareConfig
from ecrs.recipes.chat import ChatConfig
from ecrs.recipes.evaluate import EvaluateConfig
from ecrs.recipes.export_feedback import ExportFeedbackConfig
from ecrs.recipes.report import ReportConfig
from ecrs.recipes.serve import ServeConfig
from ecrs.training.emotion import EmotionConfig
from ecrs.training.generator import GeneratorTrainConfig
from ecrs.training.recommender import RecommenderTrainConfig
from ecrs.training.stance import StanceConfig

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
    # `ecrs reproduce` (and experiments/which-weight-average-decay/gpu_fast_sweep.sh) read these two from the row's own file, not its bases.
    raw = yaml.safe_load((CONFIGS / name).read_text())
    assert raw["name"] and raw["data"]["dataset"]


@pytest.mark.parametrize("cls", [PrepareConfig, EvaluateConfig, ChatConfig, ServeConfig, ExportFeedbackConfig,
                                 ReportConfig, RecommenderTrainConfig, GeneratorTrainConfig, EmotionConfig,
                                 StanceConfig])
def test_the_keys_help_lists_read_back_as_the_defaults(cls: type) -> None:
    # `ecrs <command> --help` lists each key as `key=default`: given back as `--set`s they change nothing.
    keys = _flat(to_dict(cls()))
    assert load_config(cls, None, keys) == cls()
    assert len(keys) >= len(to_dict(cls()))


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
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "train: [1]\n"}, r"b.yaml: Cannot merge incompatible container types"),
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


# ---------------------------------------------------------------- the CLI's environment per command

# What each command's process must get (docs/MODELS.md), written here apart from cli's table: PASSIVE where torch
# runs without llama.cpp; unset where llama.cpp decodes in the process (PASSIVE slows it 3x) or nothing needs it.
EXPECTED_OMP = {
    "prepare": "PASSIVE", "evaluate": "PASSIVE",
    "train recommender": "PASSIVE", "train generator": "PASSIVE", "train emotion": "PASSIVE", "train stance": "PASSIVE",
    "chat": None, "serve": None, "simulate": None, "judge": None, "annotate-emotions": None,
    "export-feedback": None, "report": None, "reproduce": None,
}


def test_every_command_has_an_expected_environment() -> None:
    assert set(EXPECTED_OMP) == set(cli.COMMANDS) | {f"train {name}" for name in cli.TRAIN_COMMANDS}


def _run_cli(command: str, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """OMP_WAIT_POLICY as each recipe import saw it, for `ecrs <command>` with a stand-in recipe."""
    seen: list[str | None] = []

    def import_module(name: str) -> SimpleNamespace:
        seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return SimpleNamespace(add_arguments=lambda p: None, run=lambda args: 0)

    monkeypatch.setattr(cli, "importlib", SimpleNamespace(import_module=import_module))
    monkeypatch.setattr(sys, "argv", ["ecrs"])
    assert cli.main(command.split()) == 0
    assert seen
    return seen


@pytest.mark.parametrize("command", sorted(EXPECTED_OMP))
def test_cli_sets_the_environment_before_the_recipe_is_imported(command: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "")  # so that the test's teardown removes what main sets
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert set(_run_cli(command, monkeypatch)) == {EXPECTED_OMP[command]}


def test_cli_keeps_a_policy_the_caller_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert set(_run_cli("train recommender", monkeypatch)) == {"ACTIVE"}


def test_the_policy_is_written_once() -> None:
    setters = [p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "src/ecrs").rglob("*.py")
               if '"PASSIVE"' in p.read_text()]
    assert setters == ["src/ecrs/runtime.py"]


def test_an_override_changes_one_key_of_a_mapping_field() -> None:
    from ecrs.training.recommender import RecommenderTrainConfig

    cfg = load_config(RecommenderTrainConfig, REPO_ROOT / "configs/recommender/ecr-fast.yaml",
                      ["model.weights.liked=3"])
    assert cfg.model.weights == {"liked": 3.0, "disliked": 1.0, "unknown": 0.5}  # the rest stays
    with pytest.raises(ConfigError, match=r"model\.weights\.unknown: expected a number"):
        load_config(RecommenderTrainConfig, None, ["model.weights.unknown=abc"])
