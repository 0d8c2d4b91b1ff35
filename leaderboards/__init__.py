"""ResBench leaderboards: markdown pages generated from results tables alone.

Never imports ``search`` or Ray: a committed ``results.csv`` (and the ``search.json`` beside it)
is all a page needs, so ``python -m leaderboards`` regenerates every page anywhere.
"""

from __future__ import annotations

from leaderboards._page import (
    PageInfo,
    ResultsSource,
    markdown_table,
    read_results_source,
    render_complexity_page,
    render_page,
    write_index,
    write_page,
)
from leaderboards._tables import ResultsError, load_results, pareto_front, rank_configurations

__all__ = [
    "PageInfo",
    "ResultsError",
    "ResultsSource",
    "load_results",
    "markdown_table",
    "pareto_front",
    "rank_configurations",
    "read_results_source",
    "render_complexity_page",
    "render_page",
    "write_index",
    "write_page",
]
