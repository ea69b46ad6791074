"""Every registered model with its parameters and GMACs at its input size, and a real forward pass of each.

python examples/model_table.py [--no-forward] [--filter 'zerosnet*']
"""

import argparse
import sys

import timm

import timm_zerosnet  # noqa: F401  (registers the models)
from timm_zerosnet.profile import markdown_table, profile_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default="", help="wildcard over model names, e.g. 'zerosnet*'")
    parser.add_argument("--no-forward", action="store_true", help="count only, skip the real forward passes")
    parser.add_argument("--compare", nargs="*", default=["resnet50", "resnetv2_50"], help="timm models to add")
    args = parser.parse_args(argv)
    names = []
    for module in ("zerosnet", "lmresnet", "preresnet", "tauresnet"):
        names += timm.list_models(args.filter or "*", module=module)
    if not names:
        parser.error(f"--filter {args.filter!r} matches none of our models; try 'zerosnet*' or leave it out for all")
    if unknown := [n for n in args.compare if not timm.is_model(n)]:
        parser.error(f"--compare: timm has no model {', '.join(unknown)} (see timm.list_models())")
    # each model once: a --compare name that --filter matches already (or one given twice) was a second, equal row
    rows = [profile_model(n, run_forward=not args.no_forward) for n in dict.fromkeys(names + list(args.compare))]
    print(markdown_table(rows))
    failed = [r for r in rows if r.forward_error]
    for r in failed:
        print(f"forward of {r.name} failed: {r.forward_error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
