"""What defines a run, and the one way overrides get in.

A configuration is one flat dict: ``model``, any ``zoo.create_model`` override and any recipe
field. ``split_config`` separates it once, where a trial starts; ``TrialConfig`` is the result,
with the data and seeds. Overrides typed on a command line (``--key value`` on ``search.train``,
``key=value`` in ``search.run --recipe``) go through ``typed_overrides``, which checks every key
against the model's options and the recipe's fields.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zoo
from search.data import data_fingerprint
from search.recipes import Recipe, parse_value, recipe_fields, resolve_recipe
from zoo.commandline import near, option_text

# Keys a configuration may hold besides zoo overrides and recipe fields.
RESERVED_KEYS = ("model", "seed")


@dataclass(frozen=True)
class TrialConfig:
    """Everything that defines a run; two runs with equal identities compute the same thing.

    ``threads``, ``device``, ``compile``, ``deterministic``, ``decode`` and ``checkpoint_minutes``
    are how it runs, not what it computes: they stay out of the identity, so a run planned or
    started on one machine resumes on another, compiled or not.
    """

    model: str
    data: str
    budget: str = "quick"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_seed: int = 0
    threads: int | None = None  # None: leave torch's setting alone
    device: str = "auto"
    compile: str = "off"  # a torch.compile mode (search.compilation)
    # Only kernels that give the same bits every time (search.train.configure_kernels): a run
    # repeats bitwise on the same card and software.
    deterministic: bool = False
    decode: str = "workers"  # where a streamed run decodes its JPEG training crops (search.stream.DECODE_PLACES)
    checkpoint_minutes: float = 10.0  # within a long epoch, a checkpoint at least this often
    # Whose budgets the recipe comes from; None: the model's own family. A search sets its
    # space's, so a timm baseline in a CIFAR search trains at 32 px with the CIFAR recipe.
    family: str | None = None
    # Data-parallel processes its command launches (torchrun). Not in this identity: the world a
    # run actually trains in joins its checkpoint's where it has several ranks (search.train).
    workers: int = 1
    # Users' modules its command imports first (the blocks they register): the block's name is
    # in the identity, where its code comes from is not.
    plugins: tuple[str, ...] = ()

    def recipe_family(self) -> str:
        return self.family or zoo.model_card(self.model).family

    def recipe(self) -> Recipe:
        """The budget's recipe for this run's family (CIFAR nets at 32 px, ImageNet nets at
        224), with the overrides applied."""
        return resolve_recipe(self.budget, self.recipe_overrides, self.recipe_family())

    def identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this config (and what pairs seeds)."""
        return json.loads(json.dumps({
            "model": self.model,
            "model_overrides": self.model_overrides,
            "data": data_fingerprint(self.data),
            "recipe": self.recipe().to_dict(),
            "seed": self.seed,
            "data_seed": self.data_seed,
        }, sort_keys=True))

    def command(self, out: str | Path) -> str:
        """The ``search.train`` command that replays this run (under ``torchrun`` for several
        workers on one machine)."""
        launcher = ["torchrun", "--standalone", f"--nproc-per-node={self.workers}"] if self.workers > 1 else ["python"]
        words = [*launcher, "-m", "search.train", "--model", self.model]
        if self.plugins:
            words += ["--plugins", ",".join(self.plugins)]
        for key, value in {**self.model_overrides, **self.recipe_overrides}.items():
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            words += [f"--{key.replace('_', '-')}", text]
        words += ["--data", self.data, "--budget", self.budget, "--seed", str(self.seed), "--data-seed", str(self.data_seed)]
        if self.recipe_family() != zoo.model_card(self.model).family:
            words += ["--family", self.recipe_family()]
        if self.threads:
            words += ["--threads", str(self.threads)]
        words += ["--device", self.device]
        if self.compile != "off":
            words += ["--compile", self.compile]
        if self.deterministic:
            words.append("--deterministic")
        if self.decode != TrialConfig.decode:
            words += ["--decode", self.decode]
        if self.checkpoint_minutes != TrialConfig.checkpoint_minutes:
            words += ["--checkpoint-minutes", str(self.checkpoint_minutes)]
        words += ["--out", str(out)]
        return shlex.join(words)


def split_config(config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A flat configuration -> (model, zoo overrides, recipe overrides); ``seed`` is separate and
    ``None`` values (keys a branch of the space did not use) are dropped."""
    fields = set(recipe_fields())
    model_overrides = {k: v for k, v in config.items() if k not in fields and k not in RESERVED_KEYS and v is not None}
    recipe_overrides = {k: v for k, v in config.items() if k in fields}
    return config["model"], model_overrides, recipe_overrides


# ---------------------------------------------------------------------------------------------
# Overrides typed by people


def parse_words(words: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` words -> {key: text}; dashes in keys become underscores."""
    pairs: dict[str, str] = {}
    words = list(words)
    while words:
        word = words.pop(0)
        if not word.startswith("--") or len(word) < 3:
            raise ValueError(f"unexpected argument {word!r}; options look like --name value")
        key, has_value, value = word[2:].partition("=")
        if not has_value:
            if not words:
                raise ValueError(f"option {word} needs a value")
            value = words.pop(0)
        pairs[key.replace("-", "_")] = value
    return pairs


def parse_assignments(items: list[str], option: str) -> dict[str, str]:
    """``key=value`` items -> {key: text}, as ``parse_words`` does for ``--key value``."""
    pairs = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        pairs[key.replace("-", "_")] = value
    return pairs


def parse_option_value(text: str) -> Any:
    """Model overrides from text: numbers, booleans, comma lists, else the string."""
    if "," in text:
        return [parse_option_value(part) for part in text.split(",") if part]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def typed_overrides(model: str | None, pairs: dict[str, str], flags: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """{key: text} -> (model overrides, recipe overrides), typed; an unknown key is an error that
    names the valid ones, and the nearest of them or of the command's own ``flags`` (a misspelt
    ``--thraeds`` lands here, not in argparse). Without a model, only recipe fields are valid."""
    # Which block options are valid depends on the block(s) chosen on the same command line.
    block = {"block": parse_option_value(pairs["block"])} if "block" in pairs else None
    model_options = zoo.model_options(model, block) if model is not None else []
    fields = recipe_fields()
    model_overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    for key, value in pairs.items():
        if key in fields:
            recipe_overrides[key] = parse_value(key, value)
        elif key in model_options:
            model_overrides[key] = parse_option_value(value)
        elif model is None:
            raise ValueError(f"unknown recipe field {key!r}{near(key, list(fields))}; valid: {', '.join(fields)}")
        else:
            nearest = near(key, [*model_options, *fields, *flags], spelled=lambda name: "--" + name.replace("_", "-"))
            named, _, named_value = value.partition("=")
            if named_value and named in (*model_options, *fields):  # search.run's `--recipe lr=0.1`, given to a run
                nearest = f" (did you mean --{named.replace('_', '-')} {named_value}? each field is a flag of its own here)"
            raise ValueError(
                f"unknown option --{key.replace('_', '-')}{nearest}; model options: {', '.join(model_options)}; "
                f"recipe fields: {', '.join(fields)}"
            )
    return model_overrides, recipe_overrides


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A ``--config`` file: a mapping in YAML (``.yaml`` / ``.yml``) or JSON (anything else, such
    as a finished search's ``search.json``). Bad files are one line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"--config {path}: {error.strerror or error}") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml), or write the file as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"--config {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path} must hold a mapping of settings, got {type(data).__name__}")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def config_option(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """(path, settings) of the ``--config FILE`` among ``argv`` ((None, {}) without one), read
    before the command's own parser so the file can supply its defaults and required values."""
    import argparse

    preparse = argparse.ArgumentParser(add_help=False)
    preparse.add_argument("--config", default=None)
    path = preparse.parse_known_args(argv)[0].config
    return path, read_config_file(path) if path else {}


def config_words(values: dict[str, Any]) -> list[str]:
    """{key: value} from a file -> ``--key value`` words, lists comma-joined (as typed)."""
    words = []
    for key, value in values.items():
        words += [f"--{key}", option_text(value)]
    return words
