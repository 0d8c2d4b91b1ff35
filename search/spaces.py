"""Search spaces: named define-by-run functions that only call ``trial.suggest_*``.

A configuration is one flat dict: ``model``, any ``zoo.create_model`` override (``block``,
``shortcut``, ``depth``, ``base_width``, ...) and any recipe field (``lr``, ...). A space
suggests some keys and may return a dict of constants for the rest. Register your own from a
plugin module (``python -m search.run --plugins mymodule``)::

    import search

    @search.register_space("my_widths")
    def my_widths(trial):
        \"\"\"Wide-ResNet widths at depth 20.\"\"\"
        trial.suggest_categorical("width_multiplier", [1, 2, 4])
        return {"model": "resnet20"}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zoo
from search.recipes import FAMILIES, recipe_fields
from zoo import ORDERING_BLOCKS

SpaceFunction = Callable[[Any], "dict[str, Any] | None"]
SAMPLERS = ("grid", "tpe", "random")
_SPACES: dict[str, SpaceFunction] = {}
_DECLARED_SAMPLERS: dict[str, str | None] = {}
_FAMILIES: dict[str, str] = {}


def register_space(name: str, sampler: str | None = None, family: str = "cifar") -> Callable[[SpaceFunction], SpaceFunction]:
    """Decorator: make ``def name(trial) -> dict | None`` searchable as ``--space name``.

    ``family``: the zoo family (``cifar`` or ``imagenet``) of every model it names, whose budgets
    (resolution, augmentation, epochs) its trials train with.

    ``sampler`` declares the space's design: ``"grid"`` for comparisons (every configuration x the
    same seeds), ``"tpe"`` or ``"random"`` for tuning; undeclared, a space gets a grid when it has
    at most 64 configurations, else TPE (see ``search.plan.choose_sampler``). The first line of its
    docstring is what ``--list-spaces`` shows. The function is checked at definition: every
    configuration it can produce must name a model, and no key may be both a model option and a
    recipe field.
    """
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"space {name!r}: unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    if family not in FAMILIES:
        raise ValueError(f"space {name!r}: unknown family {family!r}; valid: {', '.join(FAMILIES)}")

    def decorator(function: SpaceFunction) -> SpaceFunction:
        if name in _SPACES:
            raise ValueError(f"space {name!r} is already registered")
        try:
            configs = enumerate_space(function)
        except GridError:
            configs = []  # a continuous space is checked when it is sampled
            if sampler == "grid":
                raise
        for config in configs:
            check_config(name, config)
            if zoo.model_card(config["model"]).family != family:
                raise ValueError(f"space {name!r} is declared family {family!r} but names {config['model']} (family {zoo.model_card(config['model']).family!r}); one family per space: its budgets set the resolution")
        _SPACES[name] = function
        _DECLARED_SAMPLERS[name] = sampler
        _FAMILIES[name] = family
        return function

    return decorator


def get_space(name: str) -> SpaceFunction:
    if name not in _SPACES:
        raise ValueError(f"unknown space {name!r}; valid: {', '.join(list_spaces())}")
    return _SPACES[name]


def declared_sampler(name: str) -> str | None:
    get_space(name)
    return _DECLARED_SAMPLERS.get(name)


def space_family(name: str) -> str:
    get_space(name)
    return _FAMILIES[name]


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def describe(name: str) -> str:
    doc = (get_space(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def check_config(space: str, config: dict[str, Any]) -> None:
    if "model" not in config:
        raise ValueError(f"space {space!r} produced a configuration without 'model': {config}")
    model = config["model"]
    zoo.model_card(model)  # unknown model: error naming the valid ones
    block = {"block": config["block"]} if "block" in config else None
    model_options = set(zoo.model_options(model, block))
    both = sorted(set(config) & model_options & set(recipe_fields()))
    if both:
        raise ValueError(f"space {space!r}: key(s) {', '.join(both)} are both model options and recipe fields")


# ---------------------------------------------------------------------------------------------
# Grid enumeration: walk every branch of the define-by-run tree


class GridError(ValueError):
    pass


@dataclass
class _EnumeratingTrial:
    """Stands in for ``optuna.Trial``: replays one path of categorical choices, records new ones."""

    path: list[int]
    position: int = 0

    def __post_init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.branching: list[int] = []

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        choices = list(choices)
        index = self.path[self.position] if self.position < len(self.path) else 0
        self.branching.append(len(choices))
        self.position += 1
        self.params[name] = choices[index]
        return choices[index]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("suggest_"):
            raise GridError(f"a grid needs categorical choices only; this space calls trial.{name} (use --sampler tpe or random)")
        raise AttributeError(name)


def enumerate_space(function: SpaceFunction) -> list[dict[str, Any]]:
    """Every configuration of a categorical space, in depth-first order (params + constants)."""
    configs: list[dict[str, Any]] = []
    pending: list[list[int]] = [[]]
    while pending:
        path = pending.pop()
        trial = _EnumeratingTrial(path)
        constants = function(trial)
        if constants is None:
            constants = {}
        if not isinstance(constants, dict):
            raise TypeError(f"space function {function.__name__} returned {constants!r}; a space returns a dict of the configuration's constants (model, zoo options, recipe fields), or None")
        configs.append({**trial.params, **constants, "__params__": dict(trial.params)})
        # Siblings of the choices made beyond the replayed prefix are new branches.
        for depth in range(len(path), len(trial.branching)):
            for alternative in range(trial.branching[depth] - 1, 0, -1):
                pending.append([*path, *([0] * (depth - len(path))), alternative])
    return configs  # lexicographic in the order of each suggest's choices


def grid_points(function: SpaceFunction) -> list[dict[str, Any]]:
    """The suggested parameters of every grid configuration (what Optuna enqueues)."""
    points = [config["__params__"] for config in enumerate_space(function)]
    unique = {tuple(sorted(point.items())): point for point in points}
    return list(unique.values())


def strip_internal(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "__params__"}


def all_configs(function: SpaceFunction) -> list[dict[str, Any]]:
    return [strip_internal(c) for c in enumerate_space(function)]


# ---------------------------------------------------------------------------------------------
# Built-in spaces. The budget is a study attribute so a space can widen itself for paper runs.


# Model-name prefix and suffix of each ordering in the sequel's Fig. 4 order (see zoo.models).
PREACT_ORDERINGS = (("resnet", ""), ("resnet", "_bn_after_add"), ("resnet", "_relu_before_add"), ("resnet", "_relu_preact"), ("preresnet", ""))


def budget_of(trial: Any) -> str:
    study = getattr(trial, "study", None)
    return study.user_attrs.get("budget", "quick") if study is not None else "quick"


@register_space("shortcuts", sampler="grid")
def shortcuts(trial: Any) -> dict[str, Any]:
    """Shortcut A/B/C and none (the plain net) x depth 20, 56 (and 110 with --budget paper), original block."""
    depths = [20, 56, 110] if budget_of(trial) == "paper" else [20, 56]
    depth = trial.suggest_categorical("depth", depths)
    trial.suggest_categorical("shortcut", ["A", "B", "C", "none"])
    return {"model": f"resnet{depth}"}


@register_space("depth", sampler="grid")
def depth(trial: Any) -> dict[str, Any]:
    """Plain vs residual (A) at depth 20/32/44/56/110: the degradation experiment."""
    value = trial.suggest_categorical("depth", [20, 32, 44, 56, 110])
    trial.suggest_categorical("shortcut", ["none", "A"])
    return {"model": f"resnet{value}"}


def block_designs() -> list[str]:
    """Registered blocks but the sequel's three other orderings, which ``preact`` compares."""
    ablations = {name for orderings in ORDERING_BLOCKS.values() for ordering, name in orderings.items() if ordering not in ("original", "full pre-activation")}
    return [name for name in zoo.list_blocks() if name not in ablations]


@register_space("very_deep", sampler="grid")
def very_deep(trial: Any) -> dict[str, Any]:
    """ResNet-110 against ResNet-1202 (residual, A): over 1000 layers trains, and overfits (He et al. section 4.2)."""
    value = trial.suggest_categorical("depth", [110, 1202])
    trial.suggest_categorical("shortcut", ["A"])
    return {"model": f"resnet{value}"}


@register_space("blocks", sampler="grid")
def blocks(trial: Any) -> dict[str, Any]:
    """Every registered block design (yours too) x shortcut A/B/C x depth 20, 56: post- vs pre-activation, basic vs bottleneck."""
    trial.suggest_categorical("block", block_designs())
    trial.suggest_categorical("shortcut", ["A", "B", "C"])
    trial.suggest_categorical("depth", [20, 56])
    return {"model": "resnet20"}


@register_space("preact", sampler="grid")
def preact(trial: Any) -> dict[str, Any]:
    """Identity Mappings' five activation orderings (Fig. 4) at ResNet-110 (basic, A) and ResNet-164 (bottleneck, B)."""
    models = [f"{prefix}{depth}{suffix}" for depth in (110, 164) for prefix, suffix in PREACT_ORDERINGS]
    trial.suggest_categorical("model", models)
    return {}


@register_space("bottleneck", sampler="tpe")
def bottleneck(trial: Any) -> dict[str, Any]:
    """Bottleneck inner width (base_width, groups), expansion, stride_on and width multiplier at depth 29."""
    trial.suggest_categorical("block", ["bottleneck", "preact_bottleneck"])
    trial.suggest_categorical("base_width", [16, 32, 64, 128])
    trial.suggest_categorical("groups", [1, 2, 4])
    trial.suggest_categorical("expansion", [2, 4])
    trial.suggest_categorical("stride_on", ["1x1", "3x3"])
    trial.suggest_categorical("width_multiplier", [1, 2])
    return {"model": "resnet20", "depth": 29, "shortcut": "B"}


@register_space("vgg", sampler="grid")
def vgg(trial: Any) -> dict[str, Any]:
    """CIFAR VGG-11/13/16/19 (BN) against ResNet-56/110/164 of similar or fewer MACs."""
    trial.suggest_categorical("model", [f"cifar_vgg{d}_bn" for d in (11, 13, 16, 19)] + ["resnet56", "resnet110", "resnet164"])
    return {}



# He et al. 2016, Tables 2-3 (ImageNet top-1 10-crop error, REFERENCE.md): plain vs residual (A)
# at 18 and 34 layers, shortcuts A/B/C at 34, the bottleneck nets (B) and VGG-16.
IMAGENET_SHORTCUTS = {"resnet18": ["none", "A"], "resnet34": ["none", "A", "B", "C"]}


@register_space("imagenet", sampler="grid", family="imagenet")
def imagenet(trial: Any) -> dict[str, Any]:
    """The paper's ImageNet design (Tables 2-3): plain vs residual at 18/34, shortcuts A/B/C at 34, ResNet-50/101/152 and VGG-16, at the data's resolution (--data FOLDER)."""
    model = trial.suggest_categorical("model", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16"])
    if model in IMAGENET_SHORTCUTS:
        trial.suggest_categorical("shortcut", IMAGENET_SHORTCUTS[model])
    return {}
