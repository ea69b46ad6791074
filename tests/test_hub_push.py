"""zerosnet-hub push, without network: a stand-in for HfApi (its calls are bound to the real signatures), dry runs,
and the one-line failures when the Hub cannot be reached (a closed port on 127.0.0.1, offline mode, no token)."""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub.utils import filter_repo_objects
from test_hub_export import MODEL, REPO, hf_cache, make_run  # noqa: F401  (hf_cache: a fixture)

from timm_zerosnet.hub import HubError
from timm_zerosnet.hub.cli import main
from timm_zerosnet.hub.export import export
from timm_zerosnet.hub.manifest import stage
from timm_zerosnet.hub.push import push
from timm_zerosnet.release import empty_manifest, released_cfgs

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SECRET = "hf_thisIsNotARealTokenButMustNeverBePrinted"
REAL_HF_API = huggingface_hub.HfApi


class FakeHfApi:
    """Records calls after checking they bind to huggingface_hub.HfApi's real signatures, and keeps the files of the
    repo's branches as the Hub would (a new repo holds .gitattributes; a new branch starts from main)."""

    instances: list[FakeHfApi] = []
    public_repos: frozenset[str] = frozenset()  # repos that exist already, public
    private_repos: frozenset[str] = frozenset()  # repos that exist already, private
    main_files: tuple[str, ...] = (".gitattributes",)  # the files on the repo's main branch before the push

    def __init__(self, *args, **kwargs):
        inspect.signature(REAL_HF_API.__init__).bind(self, *args, **kwargs)
        self.init = kwargs
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.branches: dict[str, set[str]] = {"main": set(self.main_files)}
        FakeHfApi.instances.append(self)

    def _record(self, name, *args, **kwargs):
        bound = inspect.signature(getattr(REAL_HF_API, name)).bind(self, *args, **kwargs)
        self.calls.append((name, {k: v for k, v in bound.arguments.items() if k != "self"}))

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", *args, **kwargs)
        return SimpleNamespace(repo_id=args[0] if args else kwargs["repo_id"])

    def create_branch(self, *args, **kwargs):
        self._record("create_branch", *args, **kwargs)
        self.branches.setdefault(kwargs["branch"], set(self.branches["main"]))

    def repo_info(self, *args, **kwargs):
        self._record("repo_info", *args, **kwargs)
        # a repo this fake created is as create_repo asked; one that existed (public_repos, private_repos) stays so
        repo_id = args[0] if args else kwargs["repo_id"]
        if repo_id in self.public_repos | self.private_repos:
            return SimpleNamespace(private=repo_id in self.private_repos)
        created = [c for c in self.calls if c[0] == "create_repo"]
        return SimpleNamespace(private=created[-1][1].get("private", False) if created else False)

    def list_repo_files(self, *args, **kwargs):
        self._record("list_repo_files", *args, **kwargs)
        return sorted(self.branches[kwargs.get("revision") or "main"])

    def upload_folder(self, *args, **kwargs):
        self._record("upload_folder", *args, **kwargs)
        folder = Path(kwargs["folder_path"])
        names = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
        # what upload_folder itself takes: the folder's files that the patterns match
        chosen = list(filter_repo_objects(names, allow_patterns=kwargs["allow_patterns"]))
        self.uploaded = {name: (folder / name).read_bytes() for name in chosen}
        # and what it deletes (its documented rule): the branch's files that delete_patterns match, except
        # .gitattributes and the files uploaded in the same commit
        branch = self.branches[kwargs.get("revision") or "main"]
        patterns = kwargs.get("delete_patterns")
        matched = filter_repo_objects(sorted(branch), allow_patterns=patterns) if patterns is not None else []
        self.deleted = [name for name in matched if name != ".gitattributes" and name not in chosen]
        branch.difference_update(self.deleted)
        branch.update(chosen)
        return SimpleNamespace(oid=COMMIT, commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/{COMMIT}")


@pytest.fixture
def folder(tmp_path):
    return export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "releases.json"
    path.write_text(json.dumps(empty_manifest()))
    return path


@pytest.fixture
def fake_hub(monkeypatch, hf_cache):  # noqa: F811
    FakeHfApi.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return FakeHfApi.instances


def test_dry_run_prints_the_plan_and_touches_nothing(folder, manifest, fake_hub, capsys):
    before = manifest.read_bytes()
    assert main(["push", str(folder), "--repo-id", REPO, "--dry-run", "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert f"https://huggingface.co/{REPO} (revision main, public repo)" in out
    for path in folder.iterdir():
        sha = huggingface_hub.utils.sha.sha_fileobj(path.open("rb")).hex()
        assert f"{path.name}" in out and f"{path.stat().st_size:,} B  sha256 {sha}" in out
    assert "5 files" in out and "nothing was uploaded and nothing was written" in out
    # the same commit deletes the branch's other files; without a token the dry run cannot name them
    assert "and delete the other files of branch main in the same commit (left by earlier pushes" in out
    assert not fake_hub  # no client was even created
    assert manifest.read_bytes() == before and SECRET not in out


def test_push_uploads_the_folder_and_records_the_commit(folder, manifest, fake_hub, capsys):
    stage(folder, manifest)
    assert main(["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)]) == 0
    (api,) = fake_hub
    assert api.init["token"] == SECRET and api.init["endpoint"] == "https://huggingface.co"
    names = [name for name, _ in api.calls]
    # a push that publishes reads the visibility, and the branch's files to delete those of earlier pushes
    assert names == ["create_repo", "repo_info", "list_repo_files", "upload_folder"]
    assert api.calls[0][1] == dict(repo_id=REPO, private=False, exist_ok=True)
    upload = api.calls[3][1]
    assert upload["repo_id"] == REPO and upload["revision"] == "main" and upload["delete_patterns"] is None
    assert upload["commit_message"] == f"Add {MODEL}.c10"
    assert api.uploaded == {p.name: p.read_bytes() for p in folder.iterdir()}

    (entry,) = json.loads(manifest.read_text())["releases"]
    assert entry["state"] == "published" and entry["hub_commit"] == COMMIT and entry["repo_id"] == REPO
    assert entry["published"] and entry["staged"]
    out = capsys.readouterr()
    assert COMMIT in out.out and SECRET not in out.out + out.err
    cfg = released_cfgs(MODEL, json.loads(manifest.read_text()))["c10"]
    assert cfg["origin_url"] == f"https://huggingface.co/{REPO}" and f"Hub commit {COMMIT}" in " ".join(cfg["notes"])


def test_files_whose_names_read_as_glob_patterns_are_uploaded_as_named(folder, manifest, fake_hub):
    """upload_folder matches allow_patterns with fnmatch: a name with [ ] or ? is escaped to match itself."""
    (folder / "notes").mkdir()
    for name in ("run[v1].md", "what?.md"):
        (folder / "notes" / name).write_text(f"{name}\n")
    push(folder, REPO, manifest=manifest)
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert "notes/run[v1].md" in expected and fake_hub[0].uploaded == expected


def test_push_of_an_unstaged_folder_verifies_it_and_adds_the_entry(folder, manifest, fake_hub):
    logs: list[str] = []
    result = push(folder, REPO, revision="v1", manifest=manifest, commit_message="Release c10 weights", log=logs.append)
    # the card loads the main branch: the log says how the branch's weights load
    assert f"timm.create_model('hf-hub:{REPO}@v1', pretrained=True)" in "\n".join(logs)
    names = [name for name, _ in fake_hub[0].calls]
    assert names == ["create_repo", "repo_info", "create_branch", "list_repo_files", "upload_folder"]
    assert fake_hub[0].calls[2][1] == dict(repo_id=REPO, branch="v1", exist_ok=True)
    upload = fake_hub[0].calls[4][1]
    assert upload["revision"] == "v1" and upload["commit_message"] == "Release c10 weights"
    assert result.revision == "v1"
    assert result.commit == COMMIT and result.manifest_entry["state"] == "published"
    assert json.loads(manifest.read_text())["releases"][0]["hub_commit"] == COMMIT


def test_push_refuses_before_uploading(folder, manifest, fake_hub, tmp_path):
    with pytest.raises(HubError, match=f"was exported for {REPO}"):
        push(folder, "other/name", manifest=manifest)
    with pytest.raises(HubError, match="in timm's own organisation"):
        push(folder, "timm/zerosnet20_cifar.c10", manifest=manifest)
    with pytest.raises(HubError, match="not a valid Hub repo id"):  # refused here, not reported as a network error
        push(folder, "org/a--b", manifest=manifest)
    stage(folder, manifest)
    data = json.loads(manifest.read_text())
    data["releases"][0].update(state="published", hub_commit=COMMIT, sha256="f" * 64)
    manifest.write_text(json.dumps(data))
    with pytest.raises(HubError, match="published weights never change: export under a new tag"):
        push(folder, REPO, manifest=manifest)
    assert not fake_hub


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_failure(capsys, rc: int, *needles: str) -> str:
    out = capsys.readouterr()
    assert rc == 2
    assert out.err.count("\n") == 1 and "Traceback" not in out.err and SECRET not in out.out + out.err
    for needle in needles:
        assert needle in out.err
    return out.err


def test_no_network_fails_with_one_line(folder, manifest, hf_cache, monkeypatch, capsys):  # noqa: F811
    from huggingface_hub import constants

    port = _closed_port()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    stage(folder, manifest)
    before = manifest.read_bytes()
    rc = main(["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)])
    _one_line_failure(capsys, rc, f"cannot reach the Hugging Face Hub at http://127.0.0.1:{port}", REPO)
    assert manifest.read_bytes() == before

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    rc = main(["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)])
    _one_line_failure(capsys, rc, "HF_HUB_OFFLINE is set")

    monkeypatch.delenv("HF_TOKEN")
    rc = main(["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)])
    _one_line_failure(capsys, rc, "no Hugging Face token: set HF_TOKEN")
    assert manifest.read_bytes() == before


def test_no_network_from_the_command_line(folder, manifest, tmp_path):
    """The real entry point in a fresh process: HF_ENDPOINT is read from the environment, one line, exit code 2."""
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_TOKEN=SECRET, HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "timm_zerosnet.hub", "push", str(folder), "--repo-id", REPO]
        + ["--manifest", str(manifest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"cannot reach the Hugging Face Hub at http://127.0.0.1:{port}" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_weights_with_model_arguments_push_only_with_a_card_that_loads_their_repo(tmp_path, manifest, fake_hub):
    """Such weights never become a registry tag: a card written without --repo-id would load one, so the push is
    refused before anything is uploaded; exported for the repo, they upload and the manifest stays as it was."""
    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, model_kwargs={"lam": -1.5})))
    bare = export(run, tmp_path / "bare").path
    assert "timm.create_model('zerosnet20_cifar.c10', pretrained=True)" in (bare / "README.md").read_text()
    with pytest.raises(HubError, match=rf"Its card loads 'zerosnet20_cifar.c10', a registry tag.*--repo-id {REPO}"):
        push(bare, REPO, manifest=manifest)
    assert not fake_hub
    good = export(run, tmp_path / "good", repo_id=REPO).path
    result = push(good, REPO, manifest=manifest)
    assert result.commit == COMMIT and result.manifest_entry is None
    assert json.loads(manifest.read_text()) == empty_manifest()


def test_a_staged_folder_changed_afterwards_is_refused_before_uploading(folder, manifest, fake_hub):
    """stage records every file's hash: a card, golden file or config edited (or removed) after staging is not
    what was verified, so push refuses it instead of uploading it and recording the edit."""
    stage(folder, manifest)
    staged = manifest.read_bytes()
    readme = folder / "README.md"
    readme.write_text(readme.read_text() + "\nedited after staging\n")
    with pytest.raises(HubError, match=r"README\.md changed since zerosnet20_cifar\.c10 was staged; verify and stage"):
        push(folder, REPO, manifest=manifest)
    # the advice names the manifest pushed to (without it, following the advice staged into the package's own)
    with pytest.raises(HubError, match=rf"`zerosnet-hub stage {folder} --manifest {manifest}`"):
        push(folder, REPO, manifest=manifest, dry_run=True)
    (folder / "golden.safetensors").unlink()
    with pytest.raises(HubError, match=r"README\.md, golden\.safetensors changed since"):
        push(folder, REPO, manifest=manifest)
    assert not fake_hub and manifest.read_bytes() == staged


def test_push_verifies_a_staged_folder_again(folder, manifest, fake_hub, monkeypatch):
    """The round trip runs at every push, staged or not: a folder that no longer reproduces is never uploaded."""
    from timm_zerosnet import hub

    stage(folder, manifest)
    calls = []
    monkeypatch.setattr(hub.push, "verify_export", lambda f: calls.append(f) or (_ for _ in ()).throw(HubError("x")))
    with pytest.raises(HubError):
        push(folder, REPO, manifest=manifest)
    assert calls == [folder] and not fake_hub


def test_weights_with_model_arguments_are_not_compared_with_the_registry_tag(tmp_path, manifest, fake_hub):
    """They never become a registry tag, so a staged tag of the same name and other weights does not stop them."""
    stage(export(make_run(tmp_path / "plain"), tmp_path / "plain_export", repo_id=REPO).path, manifest)
    staged = manifest.read_bytes()
    run = make_run(tmp_path / "run", seed=3)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, model_kwargs={"lam": -1.5})))
    other = export(run, tmp_path / "lam", repo_id="testorg/zerosnet20_cifar.lam").path
    result = push(other, "testorg/zerosnet20_cifar.lam", manifest=manifest)
    assert result.commit == COMMIT and result.manifest_entry is None and manifest.read_bytes() == staged


def test_headless_weights_are_pushed_for_hf_hub_and_never_staged_as_a_registry_tag(tmp_path, manifest, fake_hub):
    """A backbone without a classifier (num_classes 0) loads with 'hf-hub:' from its config.json; a registry tag is a
    classifier, so stage refuses it in its own words and push uploads it without a manifest entry."""
    import safetensors.torch
    import timm

    weights = tmp_path / "backbone.safetensors"
    safetensors.torch.save_file(timm.create_model(MODEL, num_classes=0).state_dict(), str(weights))
    folder = export(weights, tmp_path / "headless", model=MODEL, tag="backbone", repo_id=REPO).path
    assert json.loads((folder / "config.json").read_text())["num_classes"] == 0
    with pytest.raises(HubError, match=rf"no classifier \(num_classes 0\).*'hf-hub:{REPO}'"):
        stage(folder, manifest)
    assert json.loads(manifest.read_text()) == empty_manifest() and not fake_hub
    result = push(folder, REPO, manifest=manifest)
    assert result.commit == COMMIT and result.manifest_entry is None
    assert set(fake_hub[0].uploaded) == set(result.files) and json.loads(manifest.read_text()) == empty_manifest()


def test_a_manifest_whose_folder_is_not_writable_is_refused_before_uploading(folder, tmp_path, fake_hub, monkeypatch):
    """The manifest is rewritten through a temporary file beside it: a writable file in a read-only folder would
    fail after the upload, leaving the commit unrecorded."""
    from timm_zerosnet import hub

    locked = tmp_path / "locked"
    locked.mkdir()
    manifest = locked / "releases.json"
    manifest.write_text(json.dumps(empty_manifest()))
    real_access = os.access
    monkeypatch.setattr(hub.manifest.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(HubError, match="is not writable \\(the file and its folder must be\\)"):
        push(folder, REPO, manifest=manifest)
    assert not fake_hub


def test_a_folder_the_manifest_would_refuse_is_refused_before_uploading(folder, manifest, fake_hub):
    """timm's own save_for_hf writes the tag 'untrained', which no release may carry: refused before the upload,
    not after it when the commit is to be recorded."""
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"]["tag"] = "untrained"
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "release.json").unlink()
    for dry_run in (True, False):
        with pytest.raises(HubError, match=r"pretrained tag 'untrained' must match .* export it with"):
            push(folder, REPO, manifest=manifest, dry_run=dry_run)
    assert not fake_hub and json.loads(manifest.read_text()) == empty_manifest()


def test_push_from_the_command_line_passes_revision_and_commit_message_and_list_shows_the_commit(
    folder, manifest, fake_hub, capsys
):
    """RELEASING.md's `--revision BRANCH` and `--commit-message` reach the upload; `list` then shows the published
    entry as repo@<first 12 hex digits of the Hub commit>."""
    argv = ["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)]
    assert main([*argv, "--revision", "v1", "--commit-message", "m"]) == 0
    (api,) = fake_hub
    assert [name for name, _ in api.calls] == [
        "create_repo",
        "repo_info",
        "create_branch",
        "list_repo_files",
        "upload_folder",
    ]
    upload = api.calls[-1][1]
    assert upload["revision"] == "v1" and upload["commit_message"] == "m"
    capsys.readouterr()
    assert main(["list", "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert f" {REPO}@{COMMIT[:12]}  sha256 " in out and "published" in out and COMMIT not in out


def test_a_tag_staged_for_another_repo_is_refused_before_uploading(tmp_path, manifest, fake_hub):
    """A folder exported without a repo id and staged for one repo is never pushed to another."""
    bare = export(make_run(tmp_path / "run2"), tmp_path / "bare").path
    staged_for, other = "testorg/zerosnet-a", "testorg/zerosnet-b"
    stage(bare, manifest, staged_for)
    before = manifest.read_bytes()
    for dry_run in (True, False):
        with pytest.raises(HubError, match=f"zerosnet20_cifar.c10 is staged for {staged_for}, not {other}"):
            push(bare, other, manifest=manifest, dry_run=dry_run)
    assert not fake_hub and manifest.read_bytes() == before


def test_a_dry_run_refuses_what_the_push_would_refuse(folder, tmp_path, manifest, fake_hub, capsys):
    """The dry run checks the manifest as the push does: a repo that already holds another tag is refused by
    both, before any client is created and without writing the manifest."""
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", tag="other", repo_id=REPO).path
    stage(other, manifest)
    before = manifest.read_bytes()
    for dry_run in (True, False):
        with pytest.raises(HubError, match="already holds zerosnet20_cifar.other; one repo per tag"):
            push(folder, REPO, manifest=manifest, dry_run=dry_run)
    rc = main(["push", str(folder), "--repo-id", REPO, "--dry-run", "--manifest", str(manifest)])
    assert rc != 0 and "one repo per tag" in capsys.readouterr().err
    assert not fake_hub and manifest.read_bytes() == before


# ----- mutation audit: what a failed or refused push reports, and where a push goes -----


def test_a_staged_file_edited_without_changing_its_size_is_still_refused(folder, manifest, fake_hub):
    """stage records each file's sha256, not just its size: a one-letter fix in the card is caught too."""
    stage(folder, manifest)
    readme = folder / "README.md"
    text = readme.read_text()
    i = text.index("zerosnet20_cifar")
    readme.write_text(text[:i] + "Z" + text[i + 1 :])
    assert readme.stat().st_size == len(text.encode())
    with pytest.raises(HubError, match=r"README\.md changed since zerosnet20_cifar\.c10 was staged"):
        push(folder, REPO, manifest=manifest)
    assert not fake_hub


def test_a_dry_run_names_the_endpoint_and_the_manifest_it_would_record_in(folder, manifest, fake_hub, monkeypatch):
    """HF_ENDPOINT as set now (a trailing slash dropped) is where the plan points, and the push goes there too, as
    timm_zerosnet's client; the plan ends with the manifest the commit would be recorded in."""
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.test/")
    lines = []
    push(folder, REPO, manifest=manifest, dry_run=True, log=lines.append)
    out = "\n".join(lines)
    assert f"would upload to https://hub.example.test/{REPO} (revision main, public repo):" in out
    assert f"then record {MODEL}.c10 as published in {manifest}" in out
    assert not fake_hub
    push(folder, REPO, manifest=manifest)
    (api,) = fake_hub
    assert api.init["endpoint"] == "https://hub.example.test" and api.init["library_name"] == "timm_zerosnet"


def test_a_dry_run_of_weights_with_model_arguments_records_nothing(tmp_path, manifest, fake_hub):
    """Weights that never become a registry tag: the dry run says why and does not promise a manifest entry."""
    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, model_kwargs={"lam": -1.5})))
    folder = export(run, tmp_path / "lam", repo_id=REPO).path
    lines = []
    push(folder, REPO, manifest=manifest, dry_run=True, log=lines.append)
    out = "\n".join(lines)
    assert "note: " in out and "model arguments {'lam': -1.5}" in out
    assert "then record" not in out and "nothing was uploaded and nothing was written" in out


class _FailingHfApi(FakeHfApi):
    """The Hub refuses the upload with HTTP 403, quoting the token the request carried."""

    def upload_folder(self, *args, **kwargs):
        self._record("upload_folder", *args, **kwargs)
        response = SimpleNamespace(status_code=403, headers={}, request=None)
        message = f"403 Forbidden: {SECRET} cannot write\nmore detail"
        raise huggingface_hub.errors.HfHubHTTPError(message, response=response)


class _UnreachableBranchHfApi(FakeHfApi):
    def create_branch(self, *args, **kwargs):
        self._record("create_branch", *args, **kwargs)
        raise ConnectionError(f"connection reset (Authorization: Bearer {SECRET})")


def test_a_refused_or_failed_step_is_one_line_naming_it_without_the_token(
    folder, manifest, fake_hub, monkeypatch, capsys
):
    """An HTTP refusal says so with its status and the step; a network failure names the step it broke; the token
    never appears, even where the Hub's message quotes it; the manifest is left as it was."""
    stage(folder, manifest)
    before = manifest.read_bytes()
    argv = ["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)]
    monkeypatch.setattr(huggingface_hub, "HfApi", _FailingHfApi)
    err = _one_line_failure(capsys, main(argv), f"the Hub refused to upload to {REPO} (HTTP 403): 403 Forbidden")
    assert "***" in err and "more detail" not in err
    monkeypatch.setattr(huggingface_hub, "HfApi", _UnreachableBranchHfApi)
    err = _one_line_failure(
        capsys,
        main([*argv, "--revision", "v1"]),
        f"cannot reach the Hugging Face Hub at https://huggingface.co to create branch v1 of {REPO} (ConnectionError",
    )
    assert "***" in err
    calls = [name for api in fake_hub for name, _ in api.calls]
    assert calls == ["create_repo", "repo_info", "list_repo_files", "upload_folder"] + [
        "create_repo",
        "repo_info",
        "create_branch",
    ]
    assert manifest.read_bytes() == before


def test_a_folder_given_under_the_home_folder_is_uploaded(folder, manifest, fake_hub, monkeypatch):
    """`zerosnet-hub push ~/exports/x`: the upload reads the folder the tilde names."""
    monkeypatch.setenv("HOME", str(folder.parent))
    result = push(f"~/{folder.name}", REPO, manifest=manifest)
    (api,) = fake_hub
    assert Path(api.calls[-1][1]["folder_path"]) == folder
    assert api.uploaded == {p.name: p.read_bytes() for p in folder.iterdir()} and result.commit == COMMIT


def test_publishing_keeps_the_staging_date_and_refuses_labels_the_manifest_would_refuse(folder, manifest, fake_hub):
    """The entry a push records keeps when it was staged; a folder whose entry the manifest would refuse (label
    names that are not one per class, in a folder without release.json) is refused before the upload, not after."""
    stage(folder, manifest)
    data = json.loads(manifest.read_text())
    data["releases"][0]["staged"] = "2020-01-02T03:04:05+00:00"
    manifest.write_text(json.dumps(data))
    entry = push(folder, REPO, manifest=manifest).manifest_entry
    assert entry["staged"] == "2020-01-02T03:04:05+00:00" and entry["published"] > entry["staged"]
    assert json.loads(manifest.read_text())["releases"][0]["staged"] == "2020-01-02T03:04:05+00:00"

    fresh = manifest.parent / "fresh.json"
    fresh.write_text(json.dumps(empty_manifest()))
    config = json.loads((folder / "config.json").read_text())
    config["label_names"] = config["label_names"][:-1]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "release.json").unlink()
    with pytest.raises(HubError, match="label_names must be a list of num_classes strings"):
        push(folder, REPO, manifest=fresh)
    assert len(fake_hub) == 1 and json.loads(fresh.read_text()) == empty_manifest()


def test_install_local_without_a_repo_id_is_a_usage_error(folder, capsys):
    # push takes the repo id given at export (test_push_defaults_to_the_repo_given_at_export)
    with pytest.raises(SystemExit) as exit_info:
        main(["install-local", str(folder)])
    assert exit_info.value.code == 2 and "--repo-id" in capsys.readouterr().err


def test_private_push_never_uploads_into_an_existing_public_repo(folder, manifest, fake_hub, monkeypatch, capsys):
    """create_repo(private=True, exist_ok=True) leaves an existing public repo public: the upload went there, and
    the weights were public, without a word. Refused before the upload; a new repo is created private."""
    before = manifest.read_bytes()
    monkeypatch.setattr(FakeHfApi, "public_repos", frozenset({REPO}))
    assert main(["push", str(folder), "--repo-id", REPO, "--private", "--manifest", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert f"{REPO} exists and is public, and --private does not change an existing repo" in err
    assert err.count("\n") == 1 and "Nothing was uploaded" in err
    assert [name for name, _ in fake_hub[-1].calls] == ["create_repo", "repo_info"] and manifest.read_bytes() == before
    monkeypatch.setattr(FakeHfApi, "public_repos", frozenset())
    assert main(["push", str(folder), "--repo-id", REPO, "--private", "--manifest", str(manifest)]) == 0
    assert [name for name, _ in fake_hub[-1].calls] == ["create_repo", "repo_info", "list_repo_files", "upload_folder"]
    assert fake_hub[-1].calls[0][1]["private"] is True


def _hub_refusal(status: int, server_message: str) -> Exception:
    """The error huggingface_hub raises for a Hub response with ``status`` and the Hub's X-Error-Message."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    headers = {"X-Error-Message": server_message, "X-Request-Id": "Root=1-abc"}
    try:
        hf_raise_for_status(httpx2.Response(status, headers=headers, request=request, json={"error": server_message}))
    except huggingface_hub.errors.HfHubHTTPError as e:
        return e
    raise AssertionError("no error raised")


@pytest.mark.parametrize(
    "status, reason, advice",
    [
        (
            403,
            'You don\'t have the rights to create a model under the namespace "testorg"',
            "may not write to testorg: use a token with the write role",
        ),
        (401, "Invalid credentials in Authorization header", "set HF_TOKEN to a valid token, or log in again"),
    ],
)
def test_a_bad_or_read_only_token_is_one_line_with_the_hubs_reason_and_what_to_do(
    folder, manifest, fake_hub, monkeypatch, capsys, status, reason, advice
):
    """huggingface_hub puts a bare '(Request ID: ...)' first in a 403's message: a read-only token's push said only
    'the Hub refused to create ORG/NAME (HTTP 403): (Request ID: Root=...)', and an invalid token's said
    'Client error '401 Unauthorized' for url ...', neither saying what was wrong or what to do."""
    error = _hub_refusal(status, reason)

    class RefusingHfApi(FakeHfApi):
        def create_repo(self, *args, **kwargs):
            self._record("create_repo", *args, **kwargs)
            raise error

    monkeypatch.setattr(huggingface_hub, "HfApi", RefusingHfApi)
    before = manifest.read_bytes()
    rc = main(["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)])
    err = _one_line_failure(capsys, rc, f"the Hub refused to create {REPO} (HTTP {status}): {reason}; ", advice)
    assert "Request ID" not in err and "HF_TOKEN" in err
    assert manifest.read_bytes() == before and [n for n, _ in fake_hub[-1].calls] == ["create_repo"]


# ----- what the branch holds after a push, and what a push to a private repo records -----

STALE = ("pytorch_model.bin", "open_clip_model.safetensors", "old/weights[v0].safetensors", "open_clip_config.json")


def test_a_push_leaves_the_branch_holding_exactly_the_folders_files(folder, manifest, fake_hub, monkeypatch):
    """upload_folder only adds and replaces: a repo pushed to before kept the files of earlier pushes (an old
    pytorch_model.bin, another library's weights and config), and `hf-hub:` users could get a mix of two releases.
    The upload's own commit deletes them (.gitattributes, the Hub's, stays), and the log names them."""
    monkeypatch.setattr(FakeHfApi, "main_files", (".gitattributes", "README.md", "model.safetensors", *STALE))
    logs: list[str] = []
    result = push(folder, REPO, manifest=manifest, log=logs.append)
    (api,) = fake_hub
    assert api.branches["main"] == {p.name for p in folder.iterdir()} | {".gitattributes"}
    assert [name for name, _ in api.calls].count("upload_folder") == 1  # deleted in the upload's commit
    assert api.calls[-2] == ("list_repo_files", dict(repo_id=REPO, revision="main"))
    assert sorted(api.deleted) == sorted(STALE) == result.deleted
    out = "\n".join(logs)
    assert "and deleted 4 files of earlier pushes that the folder does not hold (still in the repo's history)" in out
    assert all(name in out for name in STALE) and result.manifest_entry["state"] == "published"

    # a new branch starts from main's files: it too holds only the folder's
    monkeypatch.setattr(FakeHfApi, "main_files", (".gitattributes", *STALE))
    fresh = manifest.parent / "fresh.json"
    fresh.write_text(json.dumps(empty_manifest()))
    push(folder, REPO, revision="v1", manifest=fresh)
    assert fake_hub[-1].branches["v1"] == {p.name for p in folder.iterdir()} | {".gitattributes"}
    assert fake_hub[-1].branches["main"] == {".gitattributes", *STALE}  # another branch is left alone


def test_the_real_upload_folder_deletes_exactly_the_stale_files_in_the_uploads_commit(
    folder, manifest, fake_hub, monkeypatch
):
    """huggingface_hub's own upload_folder (its single-commit path, without network): the delete patterns push
    passes become delete operations of exactly the stale files, names with glob characters included, in the one
    commit that adds the folder's files; nothing of the folder and not .gitattributes is deleted."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_api

    commits: list[list] = []

    class OfflineHfApi(REAL_HF_API):
        def create_repo(self, repo_id, **kwargs):
            return SimpleNamespace(repo_id=repo_id)

        def repo_info(self, repo_id, **kwargs):
            return SimpleNamespace(private=False)

        def list_repo_files(self, repo_id, **kwargs):
            return [".gitattributes", "README.md", "config.json", "model.safetensors", *STALE]

        def _validate_yaml(self, content, **kwargs):  # the Hub checks the card's front matter
            pass

        def create_commit(self, repo_id, operations, **kwargs):
            commits.append(list(operations))
            return SimpleNamespace(oid=COMMIT, commit_url=f"https://huggingface.co/{repo_id}/commit/{COMMIT}")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineHfApi)
    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False)
    result = push(folder, REPO, manifest=manifest)
    (operations,) = commits
    deleted = {op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)}
    added = {op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)}
    assert deleted == set(STALE) and added == {p.name for p in folder.iterdir()}
    assert set(result.deleted) == deleted and result.commit == COMMIT


def test_a_private_push_uploads_and_leaves_the_manifest_as_it_was(folder, manifest, fake_hub, capsys):
    """A published tag is for anyone calling timm.create_model(name, pretrained=True), and a private repo refuses
    them: a --private push uploaded and recorded the tag as published all the same. Now the staged entry (or its
    absence) stays, and the note says why and how to publish it."""
    argv = ["push", str(folder), "--repo-id", REPO, "--private", "--manifest", str(manifest)]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "then record" not in out and f"note: {REPO} is private" in out and "stays out of it" in out
    stage(folder, manifest)
    staged = manifest.read_bytes()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert fake_hub[-1].uploaded == {p.name: p.read_bytes() for p in folder.iterdir()} and COMMIT in out
    assert manifest.read_bytes() == staged
    assert f"note: {REPO} is private, so the manifest {manifest} is left as it was ({MODEL}.c10 stays staged)" in out
    assert f"make {REPO} public on the Hub (its Settings) and push again without --private" in out
    assert "recorded" not in out

    fresh = manifest.parent / "fresh.json"
    fresh.write_text(json.dumps(empty_manifest()))
    result = push(folder, REPO, private=True, manifest=fresh)
    assert result.commit == COMMIT and result.manifest_entry is None
    assert json.loads(fresh.read_text()) == empty_manifest()


def test_a_push_without_private_into_an_existing_private_repo_is_refused(
    folder, manifest, fake_hub, monkeypatch, capsys
):
    """create_repo(private=False, exist_ok=True) leaves an existing private repo private: the tag was recorded as
    published in a repo its users cannot download. Refused before the upload; made public, it publishes."""
    stage(folder, manifest)
    staged = manifest.read_bytes()
    monkeypatch.setattr(FakeHfApi, "private_repos", frozenset({REPO}))
    argv = ["push", str(folder), "--repo-id", REPO, "--manifest", str(manifest)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{REPO} exists and is private, so {MODEL}.c10 would be published" in err
    assert "make it public on the Hub (its Settings) and push again, or add --private" in err
    assert err.count("\n") == 1 and "Nothing was uploaded" in err
    assert [name for name, _ in fake_hub[-1].calls] == ["create_repo", "repo_info"] and manifest.read_bytes() == staged
    monkeypatch.setattr(FakeHfApi, "private_repos", frozenset())
    monkeypatch.setattr(FakeHfApi, "public_repos", frozenset({REPO}))  # made public on the Hub
    assert main(argv) == 0
    assert json.loads(manifest.read_text())["releases"][0]["state"] == "published"


def test_a_dry_run_checks_the_round_trip_as_the_push_does(folder, tmp_path, manifest, fake_hub, capsys):
    """A folder whose golden outputs do not reproduce on this machine (an export from another one: logits off by
    1e-6, release.json's golden sha256 matching them) was passed by the dry run and refused by the push that
    followed. Both refuse it now, before any client is created; a folder that reproduces says so in the dry run."""
    import shutil

    import safetensors.torch

    from timm_zerosnet.release import sha256_file

    other = tmp_path / "other_machine"
    shutil.copytree(folder, other)
    golden = safetensors.torch.load_file(str(other / "golden.safetensors"))
    golden["logits"] = golden["logits"] + 1e-6
    safetensors.torch.save_file(
        golden, str(other / "golden.safetensors"), metadata={"format": "timm_zerosnet.golden/1"}
    )
    release = json.loads((other / "release.json").read_text())
    release["golden"]["sha256"] = sha256_file(other / "golden.safetensors")
    (other / "release.json").write_text(json.dumps(release, indent=2) + "\n")
    before = manifest.read_bytes()
    for dry_run in (True, False):
        with pytest.raises(HubError, match=r"the weights do not reproduce golden\.safetensors"):
            push(other, REPO, manifest=manifest, dry_run=dry_run)
    assert not fake_hub and manifest.read_bytes() == before
    assert main(["push", str(folder), "--repo-id", REPO, "--dry-run", "--manifest", str(manifest)]) == 0
    assert "dry run: the weights reproduce golden.safetensors here (the round trip)" in capsys.readouterr().out


def test_push_defaults_to_the_repo_given_at_export(folder, tmp_path, manifest, fake_hub, capsys):
    """push, like stage, takes the repo id the export recorded (--repo-id was required, and another one is refused
    anyway); a folder exported without one asks for it."""
    assert json.loads((folder / "release.json").read_text())["repo_id"] == REPO
    assert main(["push", str(folder), "--dry-run", "--manifest", str(manifest)]) == 0
    assert f"https://huggingface.co/{REPO} (revision main, public repo)" in capsys.readouterr().out
    bare = export(make_run(tmp_path / "run2"), tmp_path / "bare").path
    assert main(["push", str(bare), "--dry-run", "--manifest", str(manifest)]) != 0
    assert f"{bare}: no Hub repo recorded at export; pass --repo-id ORG/NAME." in capsys.readouterr().err
    assert not fake_hub
