"""``python -m zoo list [PATTERN] [--complexity]``, ``python -m zoo complexity NAME...`` and
``python -m zoo predict MODEL.safetensors IMAGE...``."""

from __future__ import annotations

import math
import sys

import pandas as pd

import zoo
from zoo.commandline import OneLineParser, comma_list, exit_status
from zoo.inference import predict
from zoo.plugins import import_plugins


def describe(names: list[str], input_size: int | None, counted: bool = True) -> pd.DataFrame:
    """Each model's card; with ``counted``, its params and MACs too (building every net on the
    meta device: about 5 s for the whole zoo, so a plain listing leaves them out)."""
    rows = []
    for name in names:
        card = zoo.model_card(name)
        row = {"model": name, "family": card.family, "block": card.block or "-", "shortcut": card.shortcut or "-", "depth": card.depth}
        if counted:
            measured = zoo.complexity(name, input_size)
            row |= {"params": measured.params, "GMACs": round(measured.gmacs, 4)}
        row |= {
            "paper Mparams": math.nan if card.published.params is None else card.published.params / 1e6,
            "paper GMACs": math.nan if card.published.macs is None else card.published.macs / 1e9,
            "paper error %": math.nan if card.published.error is None else card.published.error,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m zoo", description="ResBench model zoo")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="registered models (shell wildcard, natural order)")
    listing.add_argument("pattern", nargs="?", default="*")
    listing.add_argument("--complexity", action="store_true", help="also count params and MACs (seconds for the whole zoo)")
    counting = commands.add_parser("complexity", help="params and MACs (conv+linear) beside the papers' figures")
    counting.add_argument("names", nargs="+")
    counting.add_argument("--input-size", type=int, default=None, help="default: 32 for CIFAR, 224 for ImageNet")
    predicting = commands.add_parser("predict", help="the top-5 classes of image files, from saved weights alone")
    predicting.add_argument("model", help="a .safetensors file written by zoo.save (a search.train run's model_final.safetensors)")
    predicting.add_argument("images", nargs="+")
    predicting.add_argument("--top", type=int, default=5)
    predicting.add_argument("--plugins", type=comma_list, default=[], metavar="MODULE[,MODULE]", help="your modules that register the model's blocks (as search.train --plugins)")
    args = parser.parse_args(argv)
    try:
        if args.command == "predict":
            if args.top < 1:
                raise ValueError(f"--top must be positive, got {args.top}")
            import_plugins(args.plugins)
            for prediction in predict(zoo.load(args.model), args.images, args.top):
                print(f"{prediction.path}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in prediction.top))
            return 0
        if args.command == "list":
            names = zoo.list_models(args.pattern)
            if not names:
                raise ValueError(f"no model matches {args.pattern!r}; try 'python -m zoo list'")
            table = describe(names, None, counted=args.complexity)
        else:
            if args.input_size is not None and args.input_size < 1:
                raise ValueError(f"--input-size must be positive, got {args.input_size}")
            for name in args.names:
                zoo.model_card(name)  # fail on a bad name before any counting
            table = describe(args.names, args.input_size)
    except (ValueError, OSError) as error:  # a bad name, value or file: one line
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    print(table.to_string(index=False, na_rep="-"))
    if args.command == "complexity":
        print("\nGMACs: conv + linear multiply-accumulates (the ResNet paper's 'FLOPs'), one image.")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
