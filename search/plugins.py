"""Users' modules that register blocks and spaces: imported in the driver, then in every worker."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plugin:
    """A user's module and the file the driver imported it from."""

    module: str
    path: str  # the module file, or the package directory


def import_plugins(modules: list[str]) -> list[Plugin]:
    """Import users' modules in the driver so the blocks and spaces they register exist here."""
    plugins = []
    for module in modules:
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"cannot import plugin module {module!r}: {error}") from None
        source = Path(imported.__file__ or module)
        plugins.append(Plugin(module, str(source.parent if source.name == "__init__.py" else source)))
    return plugins


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
