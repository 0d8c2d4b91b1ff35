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
from leaderboards import PageInfo, ResultsError, render_complexity_page, write_index, write_page
from leaderboards._probes import write_probe_page
from zoo.commandline import OneLineParser, comma_list
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
        if args.results:
            for source in (Path(path) for paths in args.results for path in paths):
                if source.name in PROBE_TABLES:
                    print(write_probe_page(source, Path(args.out) if args.out else source.parent).path)
                else:
                    print(write_page(source, args.out).path)
            return 0
        out = Path(args.out) if args.out else HERE
        out.mkdir(parents=True, exist_ok=True)
        # Each page is named after its folder: the campaign's table6 holds a second `depth` table,
        # and its GPU pages stand beside the CPU ones (shortcuts-gpu/, lesion-gpu/).
        pages: list[PageInfo] = [write_page(table.parent, out, name=table.parent.name) for table in sorted(HERE.glob("*/results.csv"))]
        pages += [write_probe_page(table, out, name=table.parent.name) for kind in PROBE_TABLES for table in sorted(HERE.glob(f"*/{kind}"))]
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
    sys.exit(main())
