"""``zerosnet-analyze``: training-free analysis from the command line.

Examples::

    zerosnet-analyze stability --lam -1.8
    zerosnet-analyze stability --coefficients 1 1 1 1 --plot roots.png
    zerosnet-analyze stability --scan -3 3 --family zeros --plot region.png
    zerosnet-analyze stability --lam -9/5
    zerosnet-analyze stability --model zerosnet20_cifar --checkpoint model.safetensors --json
    zerosnet-analyze stability --model zerosnet20_cifar --model-kwargs lam=-1.2 --checkpoint model.safetensors
    ARCH='|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|'
    zerosnet-analyze connectivity --nb201 "$ARCH"
    zerosnet-analyze connectivity --dag 2_21_112
    zerosnet-analyze connectivity --nb201-all --depth-range 0.99 2.51 --width-range 0.99 3.01

Invalid input prints one line to stderr and exits with status 2. Output piped into a reader that stops early
(``| head``) ends quietly with status 141, as for other tools that SIGPIPE ends.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..run_layout import (
    EXPORT_RECORDS,
    WEIGHT_FILES,
    ExportFolderError,
    architecture_name,
    check_output_file,
    is_states_folder,
    resolve_weights,
    run_architecture,
)
from . import connectivity as conn
from . import stability as stab

__all__ = ["build_parser", "main"]

PROG = "zerosnet-analyze"


class _UsageError(Exception):
    """Invalid command line or input; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


# A negative number as a command-line value: -2, -1.8, -.5, -1e-3, -9/5, -1/3e2. argparse would take such a token
# for an option (it only knows plain decimals like -1.8), so main() marks it with a leading space, which the number
# parsers strip and _text takes off a name or path that merely starts like one (--plot -1.png).
# a negative number, or what was meant as one (-inf, -nan, -1,8): a value, which the number parser then names,
# rather than an unknown option (argparse said "expected one argument"); no option name starts with a digit
_NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf|nan).*", re.IGNORECASE)
_VALUE_MARK = " "


def _mark_negative_numbers(argv: Sequence[str]) -> list[str]:
    """Mark the tokens that are negative numbers so argparse reads them as values, not as unknown options."""
    return [_VALUE_MARK + arg if _NEGATIVE_NUMBER.fullmatch(arg) else arg for arg in argv]


def _text(text: str) -> str:
    """A name or path (--plot, --checkpoint, --model, the cell options) as given: without the mark that
    _mark_negative_numbers put before '-1.png' (it reached the file name as ' -1.png')."""
    unmarked = text[len(_VALUE_MARK) :]
    return unmarked if text.startswith(_VALUE_MARK) and _NEGATIVE_NUMBER.fullmatch(unmarked) else text


def _number(text: str) -> Fraction:
    """Parse a number exactly ('-1.8' -> -9/5, '1/3'), so rational inputs get exact consistency checks."""
    text = text.strip()
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number (use e.g. -1.8 or -9/5)") from None
    try:
        float(value)
    except OverflowError:  # the roots are computed in floating point
        raise argparse.ArgumentTypeError(
            f"{text!r} is too large for a float (magnitude at most {sys.float_info.max:.6g}); give a smaller number"
        ) from None
    return value


def _tolerance(text: str) -> float:
    """Parse --tol: a float in [0, 1) (NaN would make every root count as inside the unit circle)."""
    try:
        return stab._check_tol(text.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _float(text: str) -> float:
    """Parse a float (--depth-range / --width-range): a finite number, or -inf / inf for no bound; a finite number too
    large for a float (1e400, which float() reads as inf) is refused rather than taken as no bound."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):  # NaN compares false with everything: no bound at all
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (use e.g. 0.99 or 2.51, or -inf / inf)")
    if math.isinf(value) and text.lstrip("+-").lower() not in ("inf", "infinity"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is too large for a float (magnitude at most {sys.float_info.max:.6g}); give a smaller number, "
            "or -inf / inf for no bound"
        )
    return value


def _grid_points(text: str) -> int:
    """Parse --num: the number of grid points of --scan, an integer >= 2 (the scan includes both ends)."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 2 <= value <= MAX_GRID_POINTS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid number of grid points: --num takes an integer from 2 to {MAX_GRID_POINTS:,} "
            "(both ends of --scan are grid points; the default is 601; 100,000 points take about 30 s)"
        )
    return value


MAX_GRID_POINTS = stab.MAX_SCAN_POINTS  # about a minute: a typo such as 100000000 would run for hours


def _check_plot(plot: str) -> str:
    """Refuse a --plot path before any work: no name, not a .png, or a file that is not a plot written earlier (a
    run's curves.png and weights included; see ``check_output_file``). Returns the path with ``~`` expanded: the
    plot is written to the very file that was checked (a literal '~/x.png' was checked as $HOME/x.png but written
    to ./~/x.png)."""
    if not plot.strip():
        raise _UsageError("--plot needs a file name ending in .png")
    if os.path.splitext(plot)[1].lower() != ".png":
        raise _UsageError(f"--plot {plot}: the plot is written as a PNG image; name a file ending in .png")
    # check_output_file refuses these too, but says the plot "would overwrite" a file that need not exist
    states = next((p for p in Path(plot).expanduser().parents if is_states_folder(p)), None)
    if states is not None:
        raise _UsageError(
            f"--plot {plot} is inside {states}, the folder of the training states of the run in {states.parent} "
            "(zerosnet-train writes, replaces and removes what is in it); name a file outside it"
        )
    return str(check_output_file(plot, "--plot", "a PNG image (a plot written earlier)", _is_png))


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


class _ModelKwargs(argparse.Action):
    """--model-kwargs k=v ...: read exactly as zerosnet-train reads its --model-kwargs (the same action, imported
    when the option is used, so that the other subcommands do not load the training stack)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..train import _KeyValueAction

        _KeyValueAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``zerosnet-analyze`` (exposed for docs and tests)."""
    parser = _Parser(
        prog=PROG,
        description="Training-free analysis: zero stability of residual-network schemes "
        "and DAG connectivity (effective depth / width).",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    st = sub.add_parser("stability", help="roots and zero stability of a multistep scheme")
    what = st.add_mutually_exclusive_group()
    what.add_argument("--lam", type=_number, help="ZeroSNet lambda, e.g. -1.8 or -9/5")
    what.add_argument(
        "--coefficients",
        type=_number,
        nargs="*",
        metavar="C",
        help="ZeroSNet given coefficients a0 a1 a2 b0, e.g. 1 1 1 1",
    )
    what.add_argument("--lm-k", type=_number, help="LM-ResNet k (paper convention)")
    what.add_argument("--euler", action="store_true", help="forward Euler (ResNet / tau-ResNet)")
    what.add_argument(
        "--model",
        type=_text,
        help="timm model name; its per-block schemes are analysed (local-dir:DIR, an export, or hf-hub:ORG/NAME: a "
        "published model with its weights and options)",
    )
    what.add_argument("--scan", type=_number, nargs=2, metavar=("LO", "HI"), help="scan a one-parameter family")
    st.add_argument(
        "--checkpoint",
        type=_text,
        help="state dict to load into --model (.pth, .pt or .safetensors; the authors' checkpoints too, read through "
        "the family's checkpoint filter as timm's pretrained loading reads them), or a zerosnet-train run directory "
        "(or a weights file in one): its run.json gives the model, its options and its classes and channels",
    )
    st.add_argument(
        "--weights",
        choices=tuple(WEIGHT_FILES),
        default=None,
        help="which weights of a run directory --checkpoint loads: final (the default), ema or best",
    )
    st.add_argument(
        "--model-kwargs",
        nargs="*",
        default={},
        action=_ModelKwargs,
        metavar="K=V",
        help="arguments of --model, as for zerosnet-train (e.g. lam=-1.2, coefficients=(1,1,1,1), tau=1): scheme "
        "constants such as a fixed lambda or tau are not stored in a checkpoint, so pass those it was trained with",
    )
    st.add_argument(
        "--family",
        choices=sorted(stab.KNOWN_REGIONS),
        default=None,
        help="family of --scan: zeros (lambda, the default) or lm (k)",
    )
    st.add_argument("--num", type=_grid_points, default=None, help="grid points of --scan (2 to 200,000, default 601)")
    st.add_argument(
        "--tol",
        type=_tolerance,
        default=stab.DEFAULT_TOL,
        help=f"unit-circle tolerance of the root condition: a root with |z| <= 1 + tol counts as inside (default "
        f"{stab.DEFAULT_TOL:g}; 0: exactly, up to floating-point rounding; a larger tol admits roots outside the "
        "circle, which the verdict names)",
    )
    st.add_argument(
        "--plot", type=_text, metavar="PNG", help="write the roots (or, with --scan, the modulus curve) to a PNG"
    )
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=_run_stability)

    cn = sub.add_parser("connectivity", help="effective depth / width of a cell and the NAS-Bench-201 filter")
    cell = cn.add_mutually_exclusive_group()
    cell.add_argument("--nb201", type=_text, metavar="ARCH", help="NAS-Bench-201 arch string")
    cell.add_argument("--dag", type=_text, metavar="ENCODING", help="MLP DAG encoding such as 2_21_112")
    cell.add_argument(
        "--darts", type=_text, metavar="GENOTYPE", help="DARTS normal cell: [(op, input), ...] or Genotype(...)"
    )
    cell.add_argument("--nb201-all", action="store_true", help="filter all 15,625 NAS-Bench-201 cells")
    cell.add_argument(
        "--nb201-supernet",
        action="store_true",
        help="the NAS-Bench-201 supernet without 'none' (each edge's ops weighted equally)",
    )
    for measure, default in (("depth", conn.DEFAULT_DEPTH_RANGE), ("width", conn.DEFAULT_WIDTH_RANGE)):
        cn.add_argument(
            f"--{measure}-range",
            type=_float,
            nargs=2,
            metavar=("LO", "HI"),
            default=default,
            help=f"effective {measure}s a cell may have to be kept (default: %(default)s; -inf or inf for no bound, "
            "written as null by --json)",
        )
    cn.add_argument("--json", action="store_true", help="machine-readable output")
    cn.set_defaults(func=_run_connectivity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zerosnet-analyze``; returns the exit status (0 ok, 2 invalid input, 141 when the reader of
    stdout closed the pipe early, as for a process that SIGPIPE ends)."""
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    try:
        args = parser.parse_args(_mark_negative_numbers(argv))
        if args.command is None:
            raise _UsageError("choose a subcommand: 'stability' or 'connectivity' (see --help)")
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return code
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:
        # the reader went away (| head): stop quietly like other command-line tools, with the status a shell gives a
        # process killed by SIGPIPE (128 + 13); stdout now points at devnull so that the flush at exit raises nothing
        _silence_stdout()
        return 141
    except (_UsageError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at devnull (the Python docs' recipe for SIGPIPE): what is still buffered for a closed pipe is
    dropped instead of raising again when the interpreter flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor (a test's capture)
        pass


# ---------------------------------------------------------------------------------------------------------------
# stability
# ---------------------------------------------------------------------------------------------------------------


def _run_stability(args: argparse.Namespace) -> int:
    if args.plot is not None:
        args.plot = _check_plot(args.plot)
    if args.checkpoint is not None and not args.checkpoint.strip():
        raise _UsageError("--checkpoint is empty: name a run folder or a weights file")
    if feature_options := sorted(set(args.model_kwargs or {}) & {"features_only", "out_indices", "feature_cls"}):
        raise _UsageError(
            f"--model-kwargs {', '.join(feature_options)}: the analysis reads the blocks of the classification "
            "network; leave the feature-extractor options out"
        )
    if args.checkpoint is not None and args.model is None and _given_scheme_option(args):
        raise _UsageError("--checkpoint only goes with --model NAME, or alone for a run directory")
    if args.weights is not None and (args.checkpoint is None or not os.path.isdir(os.path.expanduser(args.checkpoint))):
        raise _UsageError(
            f"--weights {args.weights} picks the weights of a run directory, and --checkpoint "
            + (f"{args.checkpoint} is a file: drop --weights" if args.checkpoint else "is not given")
        )
    if args.model_kwargs and args.model is None and args.checkpoint is None:
        raise _UsageError("--model-kwargs only goes with --model NAME (they are the arguments of that model)")
    scan_only = [name for name, value in (("--family", args.family), ("--num", args.num)) if value is not None]
    if scan_only and args.scan is None:
        given = _given_scheme_option(args)
        options = " and ".join(scan_only)
        raise _UsageError(
            f"{options} only go{'es' if len(scan_only) == 1 else ''} with --scan LO HI"
            + (f", not with {given}" if given else "")
            + f": drop {options}, or scan a family with --scan LO HI [--family zeros|lm] [--num N]"
        )
    if args.scan is not None:
        return _run_scan(args)
    if args.model is not None or args.checkpoint is not None:  # a run directory names its model
        return _run_model(args)
    if args.lam is not None:
        scheme, label, param = stab.zeros_scheme(args.lam), f"ZeroSNet lambda = {_show(args.lam)}", {"lam": args.lam}
    elif args.coefficients is not None:
        if len(args.coefficients) != 4:
            empty = "empty scheme: " if not args.coefficients else ""
            raise _UsageError(
                f"{empty}--coefficients needs the four ZeroSNet coefficients a0 a1 a2 b0, got {len(args.coefficients)}"
            )
        scheme = stab.given_scheme(*args.coefficients)
        label, param = "ZeroSNet given coefficients " + " ".join(_show(c) for c in args.coefficients), {}
    elif args.lm_k is not None:
        scheme, label, param = stab.lm_scheme(args.lm_k), f"LM-ResNet k = {_show(args.lm_k)}", {"k": args.lm_k}
    elif args.euler:
        scheme, label, param = stab.euler_scheme(), "forward Euler (ResNet; tau-ResNet with step size h = tau)", {}
    else:
        raise _UsageError(
            "empty scheme: give one of --lam, --coefficients, --lm-k, --euler, --model or --scan (see --help)"
        )
    report = stab.analyze_scheme(scheme.a, scheme.b, tol=args.tol)
    if args.plot:
        from .plots import plot_roots

        plot_roots([(label, report)], args.plot, title=label)
    if args.json:
        _print_json({"scheme": label, "param": {k: float(v) for k, v in param.items()}, **report.to_dict()})
    else:
        print(f"scheme: {label}")
        print(_format_report(report))
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


def _given_scheme_option(args: argparse.Namespace) -> str | None:
    """The scheme option given on the command line (at most one: they are mutually exclusive)."""
    for option in ("lam", "coefficients", "lm_k", "model", "scan"):
        if getattr(args, option) is not None:
            return "--" + option.replace("_", "-")
    return "--euler" if args.euler else None


def _run_scan(args: argparse.Namespace) -> int:
    lo, hi = args.scan
    args.family = args.family or "zeros"
    args.num = args.num or 601
    scan = stab.zero_stable_region(args.family, lo, hi, args.num, tol=args.tol)
    if args.plot:
        from .plots import plot_region_scan

        plot_region_scan(scan, args.plot)
    if args.json:
        _print_json(scan.to_dict())
        return 0
    name = scan.parameter
    # as many digits as tell neighbouring grid points apart: with 6, k = -1 + 1e-7 printed as -1 (the stable points
    # of --scan -1.0001 -0.9999 --family lm began at "-1", and the table listed -1 as unstable and as stable)
    wide, narrow = _grid_digits(scan.values, 6), _grid_digits(scan.values, 4)
    print(f"family: {args.family} ({name} from {_show(lo)} to {_show(hi)}, {args.num} points)")
    print(f"exact zero-stable region: {scan.region}")
    runs = ", ".join(f"[{a:.{wide}g}, {b:.{wide}g}]" for a, b in scan.intervals) or "none"
    print(f"zero-stable grid points: {runs}")
    print(
        "scan agrees with the exact region"
        if not scan.mismatches
        else f"scan disagrees with the exact region at {len(scan.mismatches)} points: "
        + ", ".join(f"{v:.{wide}g}" for v in scan.mismatches[:10])
    )
    print(f"{name:>10}  {'max spurious |z|':>16}  zero stable")
    step = max(1, (len(scan.values) - 1) // 12)
    for i in range(0, len(scan.values), step):
        modulus = f"{scan.max_spurious_modulus[i]:.4g}"
        if scan.max_spurious_modulus[i] > 1 and float(modulus) <= 1:  # 1.00005 is not 1: '1 + 5e-05'
            modulus = stab._fmt_modulus(scan.max_spurious_modulus[i])
        print(f"{scan.values[i]:>10.{narrow}g}  {modulus:>16}  {'yes' if scan.zero_stable[i] else 'no'}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _grid_digits(values: Sequence[float], least: int) -> int:
    """Significant digits (at least ``least``, at most 17) that print neighbouring points of an even grid apart."""
    try:
        needed = math.ceil(math.log10(max(abs(values[0]), abs(values[-1])) / abs(values[1] - values[0]))) + 1
    except (ValueError, ZeroDivisionError, OverflowError):  # a step too small or too large for a float
        needed = least
    return min(17, max(least, needed))


def _run_model(args: argparse.Namespace) -> int:
    import timm

    import timm_zerosnet  # noqa: F401  (registers the model families with timm)

    kwargs, name = dict(args.model_kwargs or {}), args.model
    weights, info = _checkpoint_run(args.checkpoint, args.weights or "final") if args.checkpoint else (None, None)
    if info is not None:
        # the run's architecture and options; --model must agree with it, --model-kwargs win over its options
        recorded = run_architecture(info)
        if name is not None and recorded is not None and architecture_name(name) != recorded:
            raise ValueError(
                f"{args.checkpoint} holds a {recorded!r} (see its run.json) but --model is {name!r}; drop --model or "
                f"pass --model {recorded}"
            )
        name = name if recorded is None else recorded
        shape = {k: info[k] for k in ("num_classes", "in_chans", "global_pool") if info.get(k) is not None}
        kwargs = {**shape, **(info.get("model_kwargs") or {}), **kwargs}
    if name is None:
        where = "has no run.json to name its model" if info is None else "has a run.json that names no model"
        raise _UsageError(
            f"--checkpoint {args.checkpoint} {where}: pass --model NAME (and the --model-kwargs it was trained with)"
        )
    args.model = name
    # a published model (an export folder, a Hub repo) is its weights and config.json: both make its schemes
    published = weights is None and name.split(":", 1)[0] in ("local-dir", "hf-hub")
    try:
        model = timm.create_model(args.model, pretrained=published, **kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        with_kwargs = " with --model-kwargs " + " ".join(f"{k}={v!r}" for k, v in kwargs.items()) if kwargs else ""
        raise ValueError(f"cannot build model {args.model!r}{with_kwargs}: {exc}") from None
    note = None
    if weights is not None:
        _load_checkpoint(model, weights, args.model)
        _check_scheme_values(model, weights, info is not None)
        note = _constants_note(model, args.model, args.model_kwargs or {}, info)
    report = stab.model_scheme_report(model, tol=args.tol)
    if args.plot:
        from .plots import plot_roots

        plot_roots(report, args.plot, title=args.model)
    if args.json:
        _print_json({**report.to_dict(), **({"note": note} if note else {})})
        return 0
    if note:
        print(f"note: {note}")
    verdict = "yes" if report.zero_stable else f"NO (blocks: {', '.join(report.unstable_blocks)})"
    print(f"model: {args.model} ({len(report.blocks)} blocks)")
    print(f"zero stable: {verdict}; max |z| over all blocks = {report.max_modulus:.6g}")
    params = [", ".join(f"{k}={v:.4g}" for k, v in blk.param.items()) or "-" for blk in report.blocks]
    wide = max(16, *map(len, params))  # LM-ResNet's 'step_size=1, k=-0.999' overran a fixed 16
    print(f"{'block':<14} {'param':<{wide}} {'a':<34} {'max |z|':>9} {'spurious':>9} {'order':>5}  zero stable")
    for blk, param in zip(report.blocks, params):
        r = blk.report
        a = "(" + ", ".join(f"{v:.4g}" for v in r.a) + ")"
        order = "-" if r.consistency_order is None else str(r.consistency_order)
        print(
            f"{blk.block:<14} {param:<{wide}} {a:<34} {r.max_modulus:>9.4g} {r.max_spurious_modulus:>9.4g} "
            f"{order:>5}  {'yes' if r.zero_stable else 'no'}"
        )
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _checkpoint_run(path: str, which: str = "final") -> tuple[str, dict | None]:
    """The weights file of --checkpoint (a file, or a run directory's ``which`` weights) and its run's run.json
    (None for a file outside a run directory)."""
    if not os.path.exists(os.path.expanduser(path)):
        raise ValueError(f"checkpoint {path!r} does not exist; pass the path of a state dict file or a run directory")
    try:
        weights, info = resolve_weights(path, which, option="--checkpoint")
    except ExportFolderError as e:
        raise ValueError(
            f"--checkpoint {path}: {e.folder} is an export folder ({', '.join(EXPORT_RECORDS)}), whose config.json "
            "holds the model's options (lambda, tau) that its weights alone lack; analyse it as --model "
            f"local-dir:{e.folder} (no --checkpoint): its weights and options are loaded"
        ) from None
    return str(weights), info


def _constants_note(model: Any, name: str, kwargs: dict[str, Any], info: dict[str, Any] | None = None) -> str | None:
    """Which scheme constants of ``model`` no checkpoint stores (they are model arguments), and where they came from:
    --model-kwargs, the run's run.json, or the model's defaults; None if the model has none."""
    from timm_zerosnet.models.multistep import MultistepResNet
    from timm_zerosnet.models.tauresnet import TauResNet
    from timm_zerosnet.schemes import ZeroStable

    constants, names = [], []
    if isinstance(model, MultistepResNet):
        scheme = model.scheme
        if isinstance(scheme, ZeroStable) and not scheme.trainable:
            coefficients = ", ".join(f"{c:.6g}" for c in scheme.fixed_coefficients)
            source = "coefficients" if scheme.coefficients is not None else f"lam = {scheme.lam:.6g}"
            constants.append(f"the fixed ZeroSNet coefficients (a0, a1, a2, b0) = ({coefficients}) ({source})")
            names += ["lam", "coefficients"]
        constants.append(f"the step size h = {scheme.step_size:.6g}")
        names.append("tau")
    elif isinstance(model, TauResNet) and model.tau is None:
        constants.append(f"the step size tau = {model.tau_init:.6g} (fixed with BN)")
        names.append("tau")
    if not constants:
        return None
    given = [k for k in names if k in kwargs]
    origin = "--model-kwargs " + " ".join(f"{k}={kwargs[k]!r}" for k in given) if given else "the model's defaults"
    verb = "come" if len(constants) > 1 else "comes"
    if info is not None:
        recorded = {k: v for k, v in (info.get("model_kwargs") or {}).items() if k in names}
        run = "the run's --model-kwargs " + " ".join(f"{k}={v!r}" for k, v in recorded.items()) if recorded else ""
        if not given:
            return (
                f"{' and '.join(constants)} {verb} from {run or 'the model defaults, which the run used'} (run.json): "
                "checkpoints do not store scheme constants"
            )
        return (
            f"{' and '.join(constants)} {verb} from the model arguments ({origin}), not from the checkpoint; the run "
            f"was trained with {run or 'the model defaults'} (run.json)"
        )
    return (
        f"{' and '.join(constants)} {verb} from the model arguments ({origin}), not from the checkpoint (checkpoints "
        f"do not store scheme constants); if {name} was trained with other values, pass them with --model-kwargs "
        f"({', '.join(f'{k}=...' for k in names)})"
    )


def _load_checkpoint(model: Any, path: str, name: str) -> None:
    """Load a state dict file into ``model`` through its family's checkpoint filter (as timm loads pretrained
    weights: our own and the authors' checkpoints); unreadable files and mismatched weights become one-line
    errors."""
    from timm.models import load_state_dict

    from timm_zerosnet.models import family_checkpoint_filter

    try:
        state_dict = load_state_dict(path)
    except OSError:
        raise  # permission denied and the like: main() prints the OS message
    # torch.load, pickle and safetensors signal a damaged file with unrelated types (EOFError, UnpicklingError,
    # RuntimeError, SafetensorError, ...), so everything here means "this file is not a readable checkpoint".
    except Exception as exc:
        first_line = next(iter(str(exc).splitlines()), "")
        detail = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
        raise ValueError(
            f"checkpoint {path!r} cannot be read: the file is corrupt, truncated or not a checkpoint ({detail}); "
            "pass a state dict saved with torch.save or safetensors"
        ) from None
    checkpoint_filter = family_checkpoint_filter(model)
    try:
        # exact=True: loaded strictly into the model as built, its classifier included
        fitted = state_dict if checkpoint_filter is None else checkpoint_filter(state_dict, model, exact=True)
        model.load_state_dict(fitted)
    except (RuntimeError, ValueError) as exc:
        head = None if checkpoint_filter is None else _head_misfit(model, state_dict, checkpoint_filter)
        raise ValueError(f"checkpoint {path!r} does not fit model {name!r}: {head or exc}") from None


def _head_misfit(model: Any, state_dict: dict, checkpoint_filter: Any) -> str | None:
    """Why the checkpoint's classifier alone does not fit ``model``, with the --model-kwargs that build the model it
    fits; None if more than the classifier does not fit. (The filter's own message gives timm's remedies, such as
    ``pretrained_cfg_overlay``, which this command does not take.)"""
    import torch

    from timm_zerosnet.models.multistep import unwrap_state_dict

    try:  # as for timm's features_only: a classifier that does not fit is dropped, everything else must fit
        rest = checkpoint_filter(state_dict, model, features_only=True)
    except (RuntimeError, ValueError):
        return None
    # the classifier's weight: the one matrix of the checkpoint the filter did not keep (the filter keeps the tensors
    # it loads as they are, so the comparison is by identity)
    kept = {id(v) for v in rest.values()}
    left = [v for v in unwrap_state_dict(state_dict).values() if isinstance(v, torch.Tensor) and v.dim() == 2]
    left = [v for v in left if id(v) not in kept]
    ours = getattr(model, "get_classifier", lambda: None)()
    if len(left) > 1 or not isinstance(getattr(ours, "weight", None), torch.Tensor) or ours.weight.dim() != 2:
        return None
    if not left:
        return (
            f"it has no classifier (the weights of a headless backbone) and the model has one of "
            f"{ours.weight.shape[0]} classes; build the model without one: --model-kwargs num_classes=0"
        )
    (classes, features), (our_classes, our_features) = left[0].shape, ours.weight.shape
    if classes != our_classes:
        return (
            f"its classifier has {classes} classes and the model's {our_classes}; build the model with the "
            f"checkpoint's classes: --model-kwargs num_classes={classes}"
        )
    pool = getattr(getattr(model, "global_pool", None), "pool_type", None)
    return (
        f"its classifier takes {features} features and the model's {our_features} (global_pool={pool!r}): the "
        "checkpoint was trained with other pooling; pass the global_pool it was trained with as --model-kwargs "
        "global_pool=... (e.g. catavgmax, which doubles the features of avg or max)"
    )


_SCHEME_SCALARS = {"lam": "lambda", "k": "k", "tau": "tau"}  # trained scheme constants, by parameter name


def _check_scheme_values(model: Any, path: str, in_run: bool) -> None:
    """Refuse weights whose trained scheme constants (lambda, k, tau) are NaN or infinite (a diverged training run):
    name the checkpoint and the blocks, rather than the bare 'lambda must be finite, got nan.' of the analysis."""
    bad = [
        (name, float(p.detach()))
        for name, p in model.named_parameters()
        if p.ndim == 0 and name.rsplit(".", 1)[-1] in _SCHEME_SCALARS and not math.isfinite(float(p.detach()))
    ]
    if not bad:
        return
    what = sorted({_SCHEME_SCALARS[name.rsplit(".", 1)[-1]] for name, _ in bad})
    shown = ", ".join(f"{name} = {value}" for name, value in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    if in_run:
        other = "other weights of the run (--weights final, best or ema) or an earlier checkpoint"
    else:
        other = "other or earlier weights (e.g. a checkpoint saved before the training diverged)"
    raise ValueError(
        f"checkpoint {path!r} holds a non-finite {' and '.join(what)} in {len(bad)} block(s) ({shown}{more}), so its "
        f"scheme has no roots to analyse (did the training diverge?); pass {other}"
    )


def _format_report(report: stab.SchemeReport) -> str:
    a = ", ".join(f"{v:.6g}" for v in report.a)
    b = "-" if report.b is None else ", ".join(f"{v:.6g}" for v in report.b)
    roots = []
    for i, z in enumerate(report.roots):
        tag = "principal" if i == 0 and report.principal_root is not None else f"|z| = {abs(z):.6g}"
        roots.append(f"{_complex(z)} ({tag})")
    if report.consistency_order is None:
        order = "not computed (no b)"
    elif report.consistency_order < 1:
        order = f"{report.consistency_order} (not consistent)"
    else:
        order = str(report.consistency_order)
    return "\n".join(
        [
            f"a = ({a})  b = ({b})",
            f"rho(z) = {_polynomial(report.polynomial)}",
            "roots: " + ", ".join(roots),
            f"zero stable: {'yes' if report.zero_stable else 'NO'} ({report.reason})",
            f"max |z| = {report.max_modulus:.6g}, largest spurious |z| = {report.max_spurious_modulus:.6g}",
            f"consistency order: {order}",
        ]
    )


def _polynomial(coeffs: Sequence[float]) -> str:
    k = len(coeffs) - 1
    parts = [f"z^{k}" if k > 1 else "z" if k == 1 else "1"]
    for i, c in enumerate(coeffs[1:], start=1):
        if c == 0:
            continue
        power = k - i
        variable = f"z^{power}" if power > 1 else "z" if power == 1 else ""
        magnitude = f"{abs(c):.6g}"
        term = variable if magnitude == "1" and variable else f"{magnitude} {variable}".rstrip()
        parts.append(("- " if c < 0 else "+ ") + term)
    return " ".join(parts)


def _complex(z: complex) -> str:
    if z.imag == 0:
        return f"{z.real:.6g}"
    return f"{z.real:.6g}{z.imag:+.6g}j"


def _show(value: Fraction) -> str:
    """A number as the user would write it: decimal when exact in a few digits (up to a float's 17: 1.7e+308 is no
    309-digit integer), else the fraction."""
    for text in (f"{float(value):.10g}", repr(float(value))):
        if Fraction(text) == value:
            return text
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# connectivity
# ---------------------------------------------------------------------------------------------------------------


def _run_connectivity(args: argparse.Namespace) -> int:
    depth_range, width_range = tuple(args.depth_range), tuple(args.width_range)
    for measure, (lo, hi) in (("depth", depth_range), ("width", width_range)):
        if lo == math.inf or hi == -math.inf:  # no number is >= inf (or <= -inf): the filter would keep no cell
            end, none = ("lower", "-inf") if lo == math.inf else ("upper", "inf")
            raise _UsageError(
                f"--{measure}-range {lo:g} {hi:g} keeps no cell: {lo if lo == math.inf else hi:g} as the {end} bound "
                f"admits no effective {measure}; give a finite {end} bound, or {none} for none"
            )
    if args.nb201_all:
        summary = conn.enumerate_nb201(depth_range, width_range)
        if args.json:
            record = summary.to_dict()
            for key in ("depth_range", "width_range"):  # JSON has no infinity: an unbounded end is null
                record[key] = [v if math.isfinite(v) else None for v in record[key]]
            _print_json(record)
            return 0
        print(f"NAS-Bench-201: {summary.total:,} cells, filter {_ranges(depth_range, width_range)}")
        print(f"{'kept':<32}{summary.kept:>7,}")
        print(f"{'removed':<32}{summary.removed:>7,} ({100 * summary.removed_fraction:.2f}%)")
        for key in conn.REJECTION_REASONS:
            print(f"  {_reason(key, depth_range, width_range):<30}{summary.by_reason[key]:>7,}")
        print(f"elapsed: {summary.elapsed_s * 1000:.1f} ms")
        return 0
    if args.nb201_supernet:
        ops = [op for op in conn.NB201_OPS if op != "none"]
        result = conn.nb201_supernet_connectivity({edge: ops for edge in conn.NB201_EDGES})
        label = "NAS-Bench-201 supernet without 'none'"
    elif args.nb201 is not None:
        result, label = conn.parse_nb201(args.nb201).connectivity(), args.nb201
    elif args.dag is not None:
        result, label = conn.parse_mlp_dag(args.dag).connectivity(), args.dag
    elif args.darts is not None:
        result, label = conn.parse_darts_genotype(args.darts).connectivity(), args.darts
    else:
        raise _UsageError("give one of --nb201, --dag, --darts, --nb201-all or --nb201-supernet (see --help)")
    reason = conn.rejection_reason(result.depth, result.width, depth_range, width_range)
    if args.json:
        _print_json({"cell": label, **result.to_dict(), "kept": reason is None, "reason": reason})
        return 0
    print(f"cell: {label}")
    kept = f"{result.kept_paths:g}" if isinstance(result.kept_paths, float) else f"{result.kept_paths}"
    print(f"paths: {result.num_paths} (kept {kept})" + _depths(result))
    print(f"effective depth d = {result.depth:.4g}, effective width m = {result.width:.4g}")
    verdict = "kept" if reason is None else f"removed ({_reason(reason, depth_range, width_range)})"
    print(f"filter {_ranges(depth_range, width_range)}: {verdict}")
    return 0


_MAX_SHOWN_DEPTHS = 32  # a longer list of path depths is shown as counts per depth


def _depths(result: conn.Connectivity) -> str:
    """The depths of the kept paths for the 'paths:' line: each of a few, counts per depth of many (a 25-node DAG has
    millions of paths, once printed as a 24 MB line), nothing where the cell had too many paths to list them."""
    depths = result.path_depths
    if not depths:
        many = not isinstance(result.kept_paths, float) and result.kept_paths > 0
        return f", too many to list their depths (more than {conn.MAX_LISTED_PATHS:,} paths)" if many else ""
    if len(depths) <= _MAX_SHOWN_DEPTHS:
        return ", depths " + " ".join(str(d) for d in depths)
    counts = sorted(collections.Counter(depths).items())
    return ", paths by depth " + ", ".join(f"{d}: {n:,}" for d, n in counts)


def _reason(key: str, depth_range: Sequence[float], width_range: Sequence[float]) -> str:
    """A rejection reason with the filter's bounds as numbers: '0 < d < 2', not '0 < d < depth_lo'."""
    text = conn.REJECTION_REASONS[key]
    bounds = dict(depth_lo=depth_range[0], depth_hi=depth_range[1], width_lo=width_range[0], width_hi=width_range[1])
    for name, value in bounds.items():
        text = text.replace(name, f"{value:g}")
    return text


def _ranges(depth_range: Sequence[float], width_range: Sequence[float]) -> str:
    return f"{depth_range[0]:g} <= d <= {depth_range[1]:g}, {width_range[0]:g} <= m <= {width_range[1]:g}"


def _print_json(obj: Any) -> None:
    """Print ``obj`` as standard JSON: NaN and infinity (which json.dumps would write as the non-standard NaN and
    Infinity that strict parsers refuse) are an error, never output."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False)
    except ValueError:
        raise ValueError(
            "the result holds a NaN or infinite number, which JSON cannot represent; run without --json to see it"
        ) from None
    print(text)
