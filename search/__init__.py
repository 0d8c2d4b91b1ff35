"""ResBench search: train variants on real data (``search.train``) and search the space
(``search.run``: Optuna samples, Ray Tune runs).

``search.train`` needs only torch, torchvision and pandas; Ray is imported only once a search has
decided where it runs (``search.cluster``), and Optuna only by a search.
"""

from __future__ import annotations

from typing import Any

__all__ = ["list_spaces", "register_space", "run_search"]


def __getattr__(name: str) -> Any:
    if name in ("register_space", "list_spaces"):
        from search import spaces

        return getattr(spaces, name)
    if name == "run_search":
        from search.run import run_search

        return run_search
    raise AttributeError(f"module 'search' has no attribute {name!r}")
