"""zerosnet-hub: publish timm_zerosnet weights (docs/RELEASING.md has the whole procedure).

    zerosnet-hub export RUN_DIR_OR_CHECKPOINT --out DIR [--model NAME] [--model-kwargs K=V ...] [--tag TAG]
                 [--repo-id ORG/NAME] [--dataset NAME] [--weights final|ema|best] [--overwrite]
                 [--stage [--manifest PATH]]
    zerosnet-hub verify DIR
    zerosnet-hub stage DIR [--repo-id ORG/NAME] [--manifest PATH]
    zerosnet-hub push DIR --repo-id ORG/NAME [--private] [--revision main] [--dry-run] [--manifest PATH]
    zerosnet-hub install-local DIR --repo-id ORG/NAME [--cache-dir DIR] [--revision HASH] [--manifest PATH]
    zerosnet-hub list [--manifest PATH]

push makes the branch hold exactly the folder's files: the same commit deletes files of earlier pushes that the folder
does not hold (.gitattributes stays). A push with --private uploads but records nothing in the manifest.

--manifest defaults to the package's timm_zerosnet/releases.json. stage, push and export --stage create a manifest
that does not exist yet; list and install-local refuse a --manifest PATH that does not exist (a mistyped path is no
empty manifest).

Exit codes: 0 done, 1 bad input (the message says what and how to fix it), 2 the Hub could not be reached or
refused (or a usage error).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from timm_zerosnet.run_layout import WEIGHT_FILES
from timm_zerosnet.stop_signals import stopping_like_ctrl_c
from timm_zerosnet.train import _KeyValueAction

from . import HubError

__all__ = ["main", "build_parser"]


def _given(text: str) -> str:
    """An option's value that must say something (an empty one was silently replaced by the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value: give one, or leave the option out for its default")
    return text


def _license(text: str) -> str:
    """A Hub license identifier, as the card's front matter takes it."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Hub license identifier: lower-case letters, digits, '.', '+' and '-', such as "
            "apache-2.0, mit, cc-by-4.0, or 'other'"
        )
    return text


def _branch(text: str) -> str:
    """A branch name the Hub (git) accepts, checked before a push creates the repo."""
    if (
        not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", text)
        or ".." in text
        or "//" in text
        or text.endswith(("/", ".", ".lock"))
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a branch name: letters, digits, '.', '_', '-' and '/', starting with a letter or "
            "digit, without '..' or '//', not ending with '/', '.' or '.lock' (e.g. main, v1, exp/lr-0.1)"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zerosnet-hub", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    manifest_help = "release manifest to write (default: the package's timm_zerosnet/releases.json)"

    e = sub.add_parser("export", help="write a Hub-ready folder from a training run or checkpoint")
    e.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    e.add_argument("--out", required=True, type=_given, help="destination folder (replaced only with --overwrite)")
    e.add_argument("--model", default=None, type=_given, help="architecture (default: from run.json)")
    e.add_argument(
        "--tag", default=None, type=_given, help="pretrained tag (default from the dataset: c10, c100, in1k, digits)"
    )
    e.add_argument("--repo-id", default=None, type=_given, help="Hub repo 'org/name' the card's snippets load")
    e.add_argument(
        "--dataset", default=None, type=_given, help="dataset name or Hub dataset id (default: from run.json)"
    )
    e.add_argument(
        "--weights",
        default=None,
        choices=tuple(WEIGHT_FILES),
        help="which weights of a run dir or of a training state (default final), or final / ema of a checkpoint file "
        "holding the model's and the EMA's weights (state_dict / model and state_dict_ema / model_ema; required there)",
    )
    e.add_argument(
        "--model-kwargs",
        nargs="+",
        default={},
        action=_KeyValueAction,
        metavar="KEY=VALUE",
        help="family options the weights were trained with (e.g. lam=-1.5), for weights without a run.json",
    )
    e.add_argument("--license", default="apache-2.0", type=_license, help="Hub license identifier of the card")
    e.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier export at --out atomically (never the source, a folder holding it, a folder "
        "that export did not write, or weights the manifest records as staged or published)",
    )
    e.add_argument("--stage", action="store_true", help="then verify it and stage it in the manifest")
    e.add_argument("--manifest", default=None, type=_given, help=manifest_help + "; with --stage only")

    v = sub.add_parser("verify", help="round-trip check of an export folder (golden outputs, bit for bit)")
    v.add_argument("folder", metavar="DIR")

    s = sub.add_parser("stage", help="verify an export folder and add it to the manifest as staged")
    s.add_argument("folder", metavar="DIR")
    s.add_argument("--repo-id", default=None, type=_given, help="default: the one given at export")
    s.add_argument("--manifest", default=None, type=_given, help=manifest_help)

    u = sub.add_parser("push", help="upload an export folder to the Hub and record the commit in the manifest")
    u.add_argument("folder", metavar="DIR")
    u.add_argument("--repo-id", default=None, type=_given, help="default: the one given at export")
    u.add_argument(
        "--private",
        action="store_true",
        help="create the repo private (an existing public one is refused) and leave the manifest as it was: a "
        "private repo refuses the users of a published tag",
    )
    u.add_argument("--revision", default="main", type=_branch, help="branch to commit to")
    u.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be uploaded (the commit also deletes the branch's other files); touch nothing",
    )
    u.add_argument("--commit-message", default=None, type=_given)
    u.add_argument("--manifest", default=None, type=_given, help=manifest_help)

    i = sub.add_parser("install-local", help="put an export folder into the local Hugging Face cache")
    i.add_argument("folder", metavar="DIR")
    i.add_argument("--repo-id", required=True, type=_given)
    i.add_argument("--cache-dir", default=None, type=_given, help="default: HF_HUB_CACHE (or HF_HOME/hub)")
    i.add_argument("--revision", default=None, help="40-hex commit (default: the published one, else from the files)")
    i.add_argument(
        "--manifest",
        default=None,
        type=_given,
        help="where to look up a published commit (default: the package's releases.json)",
    )

    ls = sub.add_parser("list", help="the releases in the manifest")
    ls.add_argument(
        "--manifest", default=None, type=_given, help="the manifest to read (default: the package's releases.json)"
    )
    return p


def _run(args: argparse.Namespace) -> None:
    out = print
    if args.command == "export":
        from .export import export
        from .manifest import stage

        start = time.perf_counter()
        result = export(
            args.source,
            args.out,
            model=args.model,
            tag=args.tag,
            repo_id=args.repo_id,
            dataset=args.dataset,
            weights=args.weights,
            model_kwargs=args.model_kwargs,
            license=args.license,
            overwrite=args.overwrite,
            manifest=args.manifest,
            log=out,
        )
        total = sum(f["size"] for f in result.files.values())
        took = time.perf_counter() - start
        out(f"{len(result.files)} files, {total:,} B ({', '.join(result.files)}) in {took:.1f} s")
        if args.stage:
            stage(result.path, args.manifest, args.repo_id, log=out)
    elif args.command == "verify":
        from .export import verify_export

        r = verify_export(args.folder, allow_links=True)
        out(
            f"{r.folder.name}: weights load strictly; golden outputs reproduced bit for bit (also through timm's "
            f"local-dir: loader); sha256 {r.folder.sha256}"
        )
    elif args.command == "stage":
        from .manifest import stage

        stage(args.folder, args.manifest, args.repo_id, log=out)
    elif args.command == "push":
        from .push import push

        push(
            args.folder,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            dry_run=args.dry_run,
            manifest=args.manifest,
            commit_message=args.commit_message,
            log=out,
        )
    elif args.command == "install-local":
        from .cache import install_local

        install_local(
            args.folder, args.repo_id, cache_dir=args.cache_dir, revision=args.revision, manifest=args.manifest, log=out
        )
    elif args.command == "list":
        from .manifest import read_manifest

        releases = read_manifest(args.manifest, must_exist=True)["releases"]
        if not releases:
            out("no releases in the manifest")
        for e in releases:
            top1 = (e.get("metrics") or {}).get("top1")
            where = f"{e['repo_id']}@{e['hub_commit'][:12]}" if e["state"] == "published" else e["repo_id"]
            out(
                f"{e['model']}.{e['tag']:<12} {e['state']:<9} {where}  sha256 {e['sha256'][:12]}...  "
                f"top-1 {'-' if top1 is None else f'{top1:.2f}'}"
            )


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP stops a command as Ctrl-C does: the export's temporary folder is removed on the way out, as
    for any other failure, instead of being left behind by the default handler."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """``zerosnet-hub``; returns the exit code (128 + the signal's number when Ctrl-C, SIGTERM or SIGHUP stopped it)."""
    from timm_zerosnet.release import ReleaseError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and args.manifest is not None and not args.stage:
        parser.error("export: --manifest is the manifest --stage writes; add --stage, or leave --manifest out.")
    if args.command == "export" and args.stage and args.repo_id is None:
        parser.error("export --stage: add --repo-id ORG/NAME, the Hub repo the staged release will be pushed to.")
    try:
        if args.command == "export" and args.stage:  # before the export, not after it
            from .manifest import check_writable

            check_writable(args.manifest)
        with stopping_like_ctrl_c(_stop):
            _run(args)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes stderr with it
            print(f"zerosnet-hub {args.command}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except HubError as e:
        print(f"zerosnet-hub {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except (ReleaseError, OSError) as e:  # OSError: a file or folder that cannot be read or written, named by it
        print(f"zerosnet-hub {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
