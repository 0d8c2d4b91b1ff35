"""Users' modules, which register blocks (``@zoo.register``) and spaces
(``@search.register_space``): every command that may meet a user's block by name imports them
first (``--plugins MODULE[,MODULE]``). A Ray search ships them to its workers
(``search.plugins.load_plugins``)."""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plugin:
    """A user's module and the file the driver imported it from."""

    module: str
    path: str  # the module file, or the package directory


# ResBench's own packages: a failing plugin is reported at its own line, not at theirs.
OWN_PACKAGES = tuple(str(Path(__file__).resolve().parents[1] / package) + os.sep for package in ("zoo", "search", "leaderboards"))


def import_plugins(modules: list[str]) -> list[Plugin]:
    """Import users' modules so the blocks and spaces they register exist in this process.

    A module that cannot be found, or fails while it runs (an error in its code, a block or
    space it registers wrongly), is one ValueError naming the module, the error and the line of
    the plugin's own code where it happened."""
    plugins = []
    for module in modules:
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"cannot import plugin module {module!r}: {error}") from None
        except Exception as error:  # noqa: BLE001 - whatever the user's code raises
            frames = traceback.extract_tb(error.__traceback__)
            theirs = [frame for frame in frames if not frame.filename.startswith(OWN_PACKAGES) and not frame.filename.startswith("<frozen")]
            where = theirs[-1] if theirs else frames[-1]
            raise ValueError(f"plugin module {module!r} failed while importing: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''} ({where.filename}, line {where.lineno})") from None
        source = Path(imported.__file__ or module)
        plugins.append(Plugin(module, str(source.parent if source.name == "__init__.py" else source)))
    return plugins
