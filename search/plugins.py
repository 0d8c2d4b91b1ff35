"""Users' modules in a Ray search's workers: the driver imported them (``zoo.plugins``); each
worker imports them again before it trains."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from zoo.plugins import Plugin


def load_plugins(plugins: list[Plugin]) -> None:
    """In a worker: import each plugin by name (shipped in the job's runtime environment), or,
    where it is not importable, from the driver's file (same host or shared storage)."""
    for plugin in plugins:
        if plugin.module in sys.modules:
            continue
        try:
            importlib.import_module(plugin.module)
            continue
        except ImportError:
            pass
        path = Path(plugin.path)
        location = path / "__init__.py" if path.is_dir() else path
        spec = importlib.util.spec_from_file_location(plugin.module, location, submodule_search_locations=[str(path)] if path.is_dir() else None)
        if spec is None or spec.loader is None or not location.exists():
            raise ImportError(f"plugin {plugin.module!r} is neither importable here nor at {plugin.path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[plugin.module] = module
        spec.loader.exec_module(module)
