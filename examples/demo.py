"""The demo (`make demo`): train ZeroSNet-20 with accelerate on scikit-learn's handwritten digits.

Nothing is downloaded: the 1,797 real 8x8 digit images ship with scikit-learn (1,442 train / 355 validation,
upsampled to the 32x32 input of the CIFAR-style models). A few epochs on two CPU cores reach >= 95% top-1.

The demo is a list of steps sharing one ``context`` dict; later steps (e.g. Hub export and reload) append to STEPS.
It leaves the run directory (default runs/demo): checkpoints, metrics.csv/json, curves.png, model.safetensors and
run.json. Evaluate it again with ``zerosnet-validate --checkpoint runs/demo``.

    python examples/demo.py [--run-dir runs/demo] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import timm_zerosnet  # noqa: F401  (registers the models with timm)
from timm_zerosnet.run_layout import file_in_the_way
from timm_zerosnet.train import USAGE_ERRORS, parse_args, train, usage_error

REQUIRED_TOP1 = 95.0


# what a digits_demo run and this demo's hub step write into the run directory
_DEMO_ENTRIES = {"args.yaml", "best.safetensors", "checkpoints", "curves.png", "hub", "logs", "metrics.csv"}
_DEMO_ENTRIES |= {"metrics.json", "model.safetensors", "model_ema.safetensors", "run.json"}


def _set_aside_earlier_demo_run(run_dir: Path) -> Path | None:
    """Rename ``run_dir`` to a hidden sibling if it is an earlier run of this demo (each demo is a fresh run), so that
    it comes back if the new run fails or is interrupted; refuse anything else. None where there is no earlier run."""
    try:
        recipe = (json.loads((run_dir / "run.json").read_text()).get("training") or {}).get("recipe") or ""
    except (OSError, ValueError, AttributeError):
        recipe = ""
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in _DEMO_ENTRIES)
    if not Path(recipe).name == "digits_demo.yaml" or foreign:
        what = f"it holds {', '.join(foreign[:5])}" if foreign else "it is not a run of the digits_demo recipe"
        raise SystemExit(
            f"demo: --run-dir {run_dir} exists and is not an earlier demo run ({what}); the demo replaces only its "
            f"own runs: choose another --run-dir or remove it yourself"
        )
    aside = run_dir.with_name(f".{run_dir.name}.earlier-{os.getpid()}")
    run_dir.rename(aside)
    return aside


def _left_aside(run_dir: Path) -> list[Path]:
    """Earlier runs that a demo killed before it could put them back left beside ``run_dir``."""
    return sorted(run_dir.parent.glob(f".{run_dir.name}.earlier-*")) if run_dir.parent.is_dir() else []


def train_step(context: dict) -> dict:
    """Train zerosnet20_cifar from scratch with the packaged `digits_demo` recipe (a fresh run each time). An earlier
    demo run in the run directory is replaced only once the new one has trained: if training fails or is
    interrupted (an option error, Ctrl-C), the earlier run is put back as it was."""
    run_dir = Path(context["run_dir"])
    blocker = file_in_the_way(run_dir)
    if blocker is not None:
        raise ValueError(f"--run-dir {run_dir}: {blocker} is a file, and the demo's run is a folder; choose a folder")
    for stale in _left_aside(run_dir):
        print(f"demo: note: {stale} is an earlier demo run that a killed demo left aside; move it back or remove it")
    earlier = _set_aside_earlier_demo_run(run_dir) if run_dir.exists() else None
    argv = ["-c", "digits_demo", "--output", str(run_dir.parent), "--experiment", run_dir.name]
    if context.get("epochs") is not None:  # 0 too: zerosnet-train says what is wrong with it
        argv += ["--epochs", str(context["epochs"])]
    tic = time.perf_counter()
    try:
        summary = train(parse_args(argv))
    except BaseException:
        if earlier is not None:
            if run_dir.exists():
                shutil.rmtree(run_dir)  # the failed run's start
            earlier.rename(run_dir)
            print(f"demo: the earlier demo run in {run_dir} is kept as it was", file=sys.stderr)
        raise
    if earlier is not None:
        shutil.rmtree(earlier)
    final, training = summary["metrics"]["final"], summary["training"]
    context.update(summary=summary, train_seconds=time.perf_counter() - tic, top1=final["top1"])
    context["lines"] += [
        f"model            {summary['model']} ({summary['num_classes']} classes, "
        f"input {summary['data_config']['input_size']})",
        f"training         {summary['epochs']['completed']} epochs, {training['num_updates']} updates, "
        f"{training['num_processes']} process(es), mixed precision {training['mixed_precision']}, "
        f"{context['train_seconds']:.0f} s ({final['images_per_s']:.0f} images/s in the last epoch)",
        f"validation       top-1 {final['top1']:.2f}% ({final['val_correct1']}/{final['val_samples']}), "
        f"top-5 {final['top5']:.2f}%, loss {final['val_loss']:.4f}",
        f"run directory    {run_dir} (run.json, model.safetensors, metrics.csv, curves.png, checkpoints/)",
    ]
    scheme = {k[len("scheme/") :]: v for k, v in final.items() if k.startswith("scheme/")}
    if scheme:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(scheme.items())[:6])
        context["lines"].append(f"scheme state     {shown}{', ...' if len(scheme) > 6 else ''}")
    return context


def reloaded_accuracy(model, context: dict) -> dict:
    """Top-1 of a reloaded model on the same digits validation split, with the data config it was published with."""
    from accelerate import Accelerator
    from timm.data import resolve_data_config
    from torch.utils.data import DataLoader

    from timm_zerosnet.data import TransformDataset, create_datasets
    from timm_zerosnet.train import evaluate
    from timm_zerosnet.validate import create_eval_transform

    data_config = resolve_data_config(model=model)
    splits = create_datasets({"dataset": "digits"}, train=False)
    loader = DataLoader(TransformDataset(splits.val, create_eval_transform(data_config)), batch_size=128)
    return evaluate(model, loader, Accelerator(cpu=True), desc="reloaded")


def release_line(exported) -> str | None:
    """Whether the export holds the weights that the package's release manifest records for its tag (the staged
    ``zerosnet20_cifar.digits`` is the demo's), bit for bit; None where the manifest has no such tag."""
    from timm_zerosnet.release import active_manifest, find_release

    entry = find_release(exported.model, exported.tag, active_manifest())
    if entry is None:
        return None
    name, sha256 = f"{exported.model}.{exported.tag}", exported.files["model.safetensors"]["sha256"]
    if sha256 == entry["sha256"]:
        return f"release          {name} ({entry['state']}): these weights, bit for bit"
    return (
        f"release          {name} ({entry['state']}) holds other weights (sha256 {entry['sha256'][:12]}..., these "
        f"{sha256[:12]}...): another CPU or BLAS build, other --epochs, or training code changed since it was staged"
    )


def hub_step(context: dict) -> dict:
    """Export the run for the Hub, stage it in a scratch manifest, put it into a scratch Hugging Face cache and load it
    back offline three ways (registry tag with pretrained=True, hf-hub:, local-dir:): the outputs must equal the
    trained model's bit for bit, and the reloaded model's validation accuracy the trained one's. Nothing is uploaded
    and the package's releases.json is left alone."""
    import timm
    import torch
    from huggingface_hub import constants

    from timm_zerosnet.hub.cache import install_local
    from timm_zerosnet.hub.export import export
    from timm_zerosnet.hub.manifest import stage
    from timm_zerosnet.release import check_golden, use_manifest

    run_dir = Path(context["run_dir"])
    hub_dir = run_dir / "hub"
    repo_id = "demo/zerosnet20_cifar.digits"  # never pushed: it exists only in the scratch cache below
    tic = time.perf_counter()
    exported = export(run_dir, hub_dir / "export", repo_id=repo_id, overwrite=True)
    export_seconds = time.perf_counter() - tic
    release = release_line(exported)  # before the scratch manifest below is in use
    manifest, cache = hub_dir / "releases.json", hub_dir / "hf-cache"
    manifest.unlink(missing_ok=True)
    stage(exported.path, manifest)
    install_local(exported.path, repo_id, cache_dir=cache, manifest=manifest)

    trained = timm.create_model(
        exported.model, pretrained=True, pretrained_cfg_overlay=dict(file=str(run_dir / "model.safetensors"))
    ).eval()
    x = torch.randn(8, *trained.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = trained(x)
    routes = {
        "registry tag": f"{exported.model}.{exported.tag}",
        "hf-hub:": f"hf-hub:{repo_id}",
        "local-dir:": f"local-dir:{exported.path}",
    }
    checks = {}
    offline, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True  # the demo never touches the network
    try:
        with use_manifest(manifest):
            for route, name in routes.items():
                tic = time.perf_counter()
                model = timm.create_model(name, pretrained=True, cache_dir=cache).eval()
                with torch.no_grad():
                    same = torch.equal(model(x), expected)
                checks[route] = (
                    same and check_golden(model, exported.path / "golden.safetensors").exact,
                    time.perf_counter() - tic,
                )
                if route == "registry tag":
                    reloaded = reloaded_accuracy(model, context)
    finally:
        constants.HF_HUB_OFFLINE = offline
    final = context["summary"]["metrics"]["final"]
    same_accuracy = reloaded["correct1"] == final["val_correct1"]
    context["hub_ok"] = all(ok for ok, _ in checks.values()) and same_accuracy
    size = sum(f["size"] for f in exported.files.values())
    context["lines"] += [
        f"hub export       {exported.path}: {len(exported.files)} files, {size / 1e6:.2f} MB "
        f"({', '.join(exported.files)}), {export_seconds:.1f} s",
        "hub round trip   "
        + ", ".join(
            f"{route} {'bit-identical' if ok else 'DIFFERENT'} ({s * 1000:.0f} ms)" for route, (ok, s) in checks.items()
        )
        + " (offline, scratch cache)",
        f"reloaded         timm.create_model('{exported.model}.{exported.tag}', pretrained=True): top-1 "
        f"{reloaded['top1']:.2f}% ({reloaded['correct1']}/{reloaded['count']}), "
        f"{'equal to' if same_accuracy else 'DIFFERENT FROM'} the trained model's",
    ]
    context["lines"] += [release] if release else []
    return context


STEPS: list[Callable[[dict], dict]] = [train_step, hub_step]


def run_demo(run_dir: str | Path = "runs/demo", epochs: int | None = None) -> dict:
    """Run every step; returns the shared context (``summary`` is the training run's run.json content)."""
    context: dict = {"run_dir": Path(run_dir), "epochs": epochs, "lines": []}
    tic = time.perf_counter()
    for step in STEPS:
        context = step(context)
    context["seconds"] = time.perf_counter() - tic
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default="runs/demo")
    parser.add_argument("--epochs", type=int, default=None, help="default: the digits_demo recipe's")
    args = parser.parse_args(argv)
    try:
        context = run_demo(args.run_dir, args.epochs)
    except USAGE_ERRORS as e:  # e.g. --epochs 0: one line from zerosnet-train's checks, not a traceback
        return usage_error("demo", e)
    ok = context["top1"] >= REQUIRED_TOP1 and context.get("hub_ok", True)
    print("\n" + "=" * 100)
    print("Demo summary")
    for line in context["lines"]:
        print(f"  {line}")
    print(f"  total time       {context['seconds']:.0f} s")
    print(
        f"  result           {'PASS' if ok else 'FAIL'}: top-1 {context['top1']:.2f}% (required >= {REQUIRED_TOP1}%)"
        f"{'' if context.get('hub_ok', True) else ', Hub round trip FAILED'}"
    )
    print("=" * 100)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
