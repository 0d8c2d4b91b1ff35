"""``resbench``: one command for every part, each subcommand the ``python -m`` form it names.

    resbench zoo list 'resnet*'            = python -m zoo list 'resnet*'
    resbench train --model resnet20 ...    = python -m search.train ...
    resbench search --space shortcuts ...  = python -m search.run ...
    resbench collect EXPERIMENT            = python -m search.run --collect EXPERIMENT
    resbench leaderboards                  = python -m leaderboards
    resbench probe lesion ...              = python -m search.probe ...
    resbench campaign status               = python -m search.campaign ...
    resbench --version
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

# subcommand -> (module whose main(argv) runs it, arguments put first, what it does)
SUBCOMMANDS = {
    "zoo": ("zoo.__main__", [], "list models, count params and MACs, predict from saved weights"),
    "train": ("search.train", [], "train one variant"),
    "search": ("search.run", [], "search a space (Ray Tune + Optuna), or plan / run planned / collect without Ray"),
    "collect": ("search.run", ["--collect"], "results.csv and the page from a planned experiment"),
    "leaderboards": ("leaderboards.__main__", [], "regenerate the pages from results tables"),
    "probe": ("search.probe", [], "gradient flow, lesions, layer responses"),
    "campaign": ("search.campaign", [], "the GPU campaign: status, run, publish"),
}
# Subcommands whose first word is the value of the option put first: named when it is missing,
# not left to argparse's "argument --collect: expected one argument".
FIRST_WORD = {"collect": "EXPERIMENT (the planned experiment's folder)"}


def package_version() -> str:
    try:
        return version("resbench")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, _, what) in SUBCOMMANDS.items()]
    return "usage: resbench [--version] SUBCOMMAND [ARGS...]\n\nsubcommands:\n" + "\n".join(lines) + "\n\n'resbench SUBCOMMAND --help' for each one's options."


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"resbench {package_version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        from zoo._registry import unknown_name_error  # imports torch: only when it has to say this

        print(f"error: {unknown_name_error('subcommand', name, list(SUBCOMMANDS))}", file=sys.stderr)
        return 2
    module, first, _ = SUBCOMMANDS[name]
    if rest[:1] in (["-h"], ["--help"]):
        first = []  # the module's own help, not its first option asking for a value
    elif name in FIRST_WORD and (not rest or rest[0].startswith("-")):
        print(f"error: resbench {name} needs {FIRST_WORD[name]} first: resbench {name} {FIRST_WORD[name].split()[0]}", file=sys.stderr)
        return 2
    from zoo.commandline import exit_status  # imports torch (zoo's package): as the subcommand does

    return exit_status(lambda: importlib.import_module(module).main(first + rest))


if __name__ == "__main__":
    sys.exit(main())
