"""``python -m leaderboards [--results PATH[,PATH]] [--out DIR]``: regenerate pages from results tables.

Without ``--results``: every table committed as ``leaderboards/NAME/results.csv`` becomes
``leaderboards/NAME.md`` (with its plots; NAME is the space's, or the campaign's page), every
probe table ``leaderboards/NAME/gradients.csv``, ``lesion.csv`` or ``responses.csv`` becomes
``leaderboards/NAME.md`` (``lesion/lesion.csv``: ``lesion.md``; the campaign's
``lesion-gpu/lesion.csv``: ``lesion-gpu.md``), plus the zoo's ``complexity.md`` and the index
``README.md``. With ``--results``: those tables' pages, beside each table unless ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zoo
from leaderboards import PageInfo, ResultsError, read_results_source, render_complexity_page, write_index, write_page
from leaderboards._probes import ProbeSource, read_probe_source, write_probe_page
from zoo.commandline import OneLineParser, comma_list, exit_status
from zoo.files import check_writable_folder

PROBE_TABLES = ("gradients.csv", "lesion.csv", "responses.csv")

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m leaderboards", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=comma_list, nargs="+", default=None, metavar="PATH[,PATH]", help="results.csv files or experiment directories")
    parser.add_argument("--out", default=None, help="where pages go")
    args = parser.parse_args(argv)
    try:
        if args.out:
            check_writable_folder(args.out, "--out")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        # Every table is read and checked before any page is written: one bad table changes nothing.
        if args.results:
            paths = [Path(path) for given in args.results for path in given]
            sources = [read_probe_source(path) if path.name in PROBE_TABLES else read_results_source(path) for path in paths]
            folders = [Path(args.out) if args.out else source.directory for source in sources]
            # Two tables whose pages would land on one file (two searches of one space, one --out):
            # the second would silently replace the first.
            written: dict[Path, Path] = {}
            for path, source, folder in zip(paths, sources, folders):
                page = folder.resolve() / f"{source.name}.md"
                if page in written:
                    raise ResultsError(f"--results {written[page]} and {path} would both write {page}; give them separate --out folders, one command each")
                written[page] = path
            for source, folder in zip(sources, folders):
                print((write_probe_page(source, folder) if isinstance(source, ProbeSource) else write_page(source, folder)).path)
            return 0
        out = Path(args.out) if args.out else HERE
        # Each page is named after its folder: the campaign's table6 holds a second `depth` table,
        # and its GPU pages stand beside the CPU ones (shortcuts-gpu/, lesion-gpu/).
        tables = [read_results_source(table.parent, name=table.parent.name) for table in sorted(HERE.glob("*/results.csv"))]
        probes = [read_probe_source(table, name=table.parent.name) for kind in PROBE_TABLES for table in sorted(HERE.glob(f"*/{kind}"))]
        out.mkdir(parents=True, exist_ok=True)
        pages: list[PageInfo] = [write_page(table, out) for table in tables]
        pages += [write_probe_page(probe, out) for probe in probes]
        complexity = out / "complexity.md"
        zoo.write_atomically(complexity, render_complexity_page())
        pages.append(PageInfo(complexity, "complexity", "-", "none (counted)", "ResNet-152 11.28 < VGG-16 15.47 < VGG-19 19.63 GMACs", ""))
        for page in pages:
            print(page.path)
        print(write_index(out, pages))
    except ResultsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
