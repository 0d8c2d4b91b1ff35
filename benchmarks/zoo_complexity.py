"""Time the whole zoo's complexity table (params + MACs on the meta device), cold and cached.

    python benchmarks/zoo_complexity.py
"""

from __future__ import annotations

import time

import zoo
from zoo.commandline import OneLineParser
from zoo.complexity import _complexity_by_name


def main() -> None:
    OneLineParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help, and a stray one refused
    names = zoo.list_models()
    _complexity_by_name.cache_clear()
    costs = {}
    start = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        zoo.complexity(name)
        costs[name] = time.perf_counter() - t
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for name in names:
        zoo.complexity(name)
    cached = time.perf_counter() - start
    print(f"{len(names)} models: cold {cold:.2f} s, cached {cached * 1e3:.2f} ms")
    for name, seconds in sorted(costs.items(), key=lambda item: -item[1])[:5]:
        print(f"  {name:<16} {seconds * 1e3:8.1f} ms")
    print(f"  vgg19            {costs['vgg19'] * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
