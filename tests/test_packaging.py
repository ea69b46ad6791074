"""What the distribution installs: one top-level package, timm_zerosnet, with the publishing tool of hub/ inside it."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs it there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_dir(package: str) -> Path:
    """Where setuptools takes ``package`` from, following pyproject's package-dir as it does."""
    mapping = SETUPTOOLS.get("package-dir", {})
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if head in mapping:
            return ROOT / mapping[head] / Path(*parts[i:])
    return ROOT / Path(*parts)


def test_only_timm_zerosnet_is_installed_at_the_top_level():
    """A top-level ``hub`` (as the package once installed) clashes with any other distribution of that name."""
    assert {p.split(".")[0] for p in SETUPTOOLS["packages"]} == {"timm_zerosnet"}
    assert SETUPTOOLS["package-dir"] == {"timm_zerosnet.hub": "hub"}


def test_every_package_of_the_source_tree_is_listed():
    """The package list is explicit (the hub/ mapping needs it): a new subpackage (or the recipes' folder, or a new
    kind of recipe file) missing from it would be left out of the wheel, and only an installed user would notice."""
    listed = set(SETUPTOOLS["packages"])
    for package in listed:
        assert _source_dir(package).is_dir(), package
    on_disk = set()
    for name, root in (("timm_zerosnet", ROOT / "timm_zerosnet"), ("timm_zerosnet.hub", ROOT / "hub")):
        for folder in (root, *root.rglob("*")):
            if folder.is_dir() and folder.name != "__pycache__":
                on_disk.add(".".join((name, *folder.relative_to(root).parts)))
    assert on_disk == listed
    data = SETUPTOOLS["package-data"]
    assert sorted(p.name for p in (ROOT / "timm_zerosnet" / "recipes").iterdir()) == sorted(
        p.name for pattern in data["timm_zerosnet.recipes"] for p in (ROOT / "timm_zerosnet" / "recipes").glob(pattern)
    )


def test_the_installed_publishing_tool_is_the_hub_folder():
    import timm_zerosnet.hub
    from timm_zerosnet.hub import cli

    assert Path(timm_zerosnet.hub.__file__).resolve() == ROOT / "hub" / "__init__.py"
    (script,) = entry_points(group="console_scripts", name="zerosnet-hub")
    assert script.value == "timm_zerosnet.hub.cli:main"
    assert script.load() is cli.main


def test_the_folders_the_docs_write_into_are_ignored_by_git():
    """docs/RELEASING.md exports into exports/ ("not in git"), the demo trains into runs/: their cards, configs and
    run records were offered to `git add` (only *.safetensors was ignored)."""
    import subprocess

    for path in ("exports/zerosnet20_cifar.digits/README.md", "runs/demo/run.json"):
        done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert done.returncode == 0, path


def test_make_clean_removes_the_demo_run_and_no_other_run():
    """`make clean` ran `rm -rf ... runs`, where the README and docs/RELEASING.md put real training runs
    (`zerosnet-train --output runs`): it now removes what the Makefile's own targets make, runs/demo among them."""
    import shutil
    import subprocess

    make = shutil.which("make")
    assert make is not None, "the README's set-up commands need make"
    done = subprocess.run([make, "-n", "clean"], cwd=ROOT, capture_output=True, text=True, check=True)
    removed = [word for line in done.stdout.splitlines() if line.startswith("rm ") for word in line.split()[2:]]
    assert "runs/demo" in removed and not [w for w in removed if w.rstrip("/") == "runs" or w.startswith("runs/*")]
