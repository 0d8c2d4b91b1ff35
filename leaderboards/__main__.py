"""``python -m leaderboards [--results PATH...] [--out DIR]``: regenerate pages from results tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderboards import ResultsError, write_page

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaderboards", description=__doc__)
    parser.add_argument("--results", nargs="*", default=None, help="results.csv files or experiment directories (default: those under leaderboards/)")
    parser.add_argument("--out", default=None, help="where pages go (default: beside each results table)")
    args = parser.parse_args(argv)
    sources = [Path(p) for p in args.results] if args.results else sorted(HERE.glob("*/results.csv"))
    if not sources:
        print("error: no results tables given and none committed under leaderboards/", file=sys.stderr)
        return 2
    try:
        for source in sources:
            page, _ = write_page(source, args.out)
            print(page)
    except ResultsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
