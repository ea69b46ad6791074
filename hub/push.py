"""Publish an export folder to the Hugging Face Hub and record the Hub commit in the release manifest.

After a push the branch holds exactly the folder's files (and the Hub's own ``.gitattributes``): files of earlier
pushes that the folder does not hold are deleted in the upload's commit, so ``hf-hub:`` never mixes two releases. A
private repo is no published tag (its users could not download it): a push there uploads and leaves the manifest as
it was.

The token comes from HF_TOKEN or the user's stored login (``huggingface_hub.get_token()``); it is passed to the
client and never written or printed. Network and Hub failures become one ``HubUnreachable`` line (exit code 2).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timm_zerosnet.release import _first_line, find_release, manifest_path, repo_id_problem

from . import HubError, HubUnreachable
from .export import read_export, verify_export
from .manifest import NotARegistryTag, check_recordable, manifest_entry, read_manifest, record_published

__all__ = ["push", "PushResult", "upload_plan", "format_plan", "hub_endpoint"]


@dataclass
class PushResult:
    repo_id: str
    revision: str
    commit: str | None  # None for a dry run
    commit_url: str | None
    files: dict[str, dict[str, Any]]
    manifest_entry: dict[str, Any] | None
    deleted: list[str] | None = None  # the branch's files the commit deleted; None for a dry run (not asked)


def hub_endpoint() -> str:
    """HF_ENDPOINT as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def upload_plan(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The files a push uploads, with size and sha256 (hidden files are never uploaded)."""
    return read_export(folder).files


def format_plan(repo_id: str, revision: str, private: bool, files: dict[str, dict[str, Any]]) -> list[str]:
    width = max(len(n) for n in files)
    lines = [f"{hub_endpoint()}/{repo_id} (revision {revision}, {'private' if private else 'public'} repo):"]
    for name, f in files.items():
        lines.append(f"  {name:<{width}}  {f['size']:>12,} B  sha256 {f['sha256']}")
    lines.append(f"  {len(files)} files, {sum(f['size'] for f in files.values()):,} B in all")
    return lines


def _http_reason(e: BaseException) -> str:
    """The Hub's own reason for refusing a request, on one line: its server message when it sent one, else the first
    line of the error that says something (huggingface_hub puts a bare '(Request ID: ...)' first for 403 and 429)."""
    lines = str(getattr(e, "server_message", None) or "").splitlines() + str(e).splitlines()
    said = [line.strip() for line in lines if line.strip() and not re.fullmatch(r"\(Request ID: [^)]*\)", line.strip())]
    return said[0].rstrip(".") if said else _first_line(e)


def _http_advice(status: int | None, repo_id: str) -> str | None:
    """What to do about a refusal, for the refusals a push meets."""
    org = repo_id.split("/", 1)[0]
    if status == 401:
        return "the token is not valid: set HF_TOKEN to a valid token, or log in again with `hf auth login`."
    if status == 403:
        return (
            f"the token (HF_TOKEN or `hf auth login`) may not write to {org}: use a token with the write role of an "
            f"account that may create and write repos in {org}."
        )
    if status == 429:
        return "the Hub limits the rate of requests: wait and push again."
    if isinstance(status, int) and status >= 500:
        return "a failure on the Hub's side: push again later."
    return None


def _hub_failure(e: BaseException, step: str, repo_id: str, token: str | None) -> HubUnreachable:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(e, OfflineModeIsEnabled):
        msg = f"cannot {step} {repo_id}: HF_HUB_OFFLINE is set; unset it to push."
    elif isinstance(e, HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", None)
        msg = f"the Hub refused to {step} {repo_id} (HTTP {status}): {_http_reason(e)}"
        advice = _http_advice(status, repo_id)
        if advice:
            msg += f"; {advice}"
    else:
        detail = (str(e).strip().splitlines() or [""])[0]
        msg = (
            f"cannot reach the Hugging Face Hub at {hub_endpoint()} to {step} {repo_id} ({type(e).__name__}"
            f"{': ' + detail if detail else ''}); check the network connection (or HF_ENDPOINT) and try again."
        )
    if token:
        msg = msg.replace(token, "***")
    return HubUnreachable(msg)


def _branch_files(api: Any, repo_id: str, revision: str) -> list[str]:
    """The files of the branch, sorted (none when it does not exist yet)."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return sorted(api.list_repo_files(repo_id, revision=revision))
    except RevisionNotFoundError:
        return []


def _private_note(name: str, repo_id: str, old: dict[str, Any] | None, manifest: str | Path | None) -> str:
    """Why a push to a private repo leaves the manifest as it was, and how to publish the tag."""
    was = f"{name} stays {old['state']}" if old is not None else f"{name} stays out of it"
    return (
        f"note: {repo_id} is private, so the manifest {manifest or manifest_path()} is left as it was ({was}): a "
        f"published tag is for anyone calling timm.create_model('{name}', pretrained=True), and a private repo "
        f"refuses them. To publish it, make {repo_id} public on the Hub (its Settings) and push again without "
        "--private."
    )


def push(
    folder: str | Path,
    repo_id: str | None = None,
    *,
    private: bool = False,
    revision: str = "main",
    dry_run: bool = False,
    manifest: str | Path | None = None,
    commit_message: str | None = None,
    api: Any = None,
    log: Callable[[str], None] = lambda msg: None,
) -> PushResult:
    """Create ``repo_id`` if needed, make its branch hold exactly the folder's files in one commit and record it.

    The commit uploads the folder's files and deletes the branch's other files (left by earlier pushes; the Hub's
    ``.gitattributes`` stays). A registry tag is recorded as published in the manifest only in a public repo: with
    ``private`` the upload is done and the manifest is left as it was; an existing private repo is refused without
    ``private`` (nothing uploaded), since the published tag would not load for its users.

    Args:
        folder: an export folder (``zerosnet-hub export``).
        repo_id: 'org/name'; default: the one given at export (release.json's).
        private: create the repo private (or upload into an existing private one) and record nothing.
        revision: branch to commit to (created when missing).
        dry_run: only report what would be uploaded; touches nothing, needs no token or network.
        manifest: the manifest to record in (default: the package's releases.json).
        commit_message: default 'Add <model>.<tag>'.
        api: a ``huggingface_hub.HfApi`` (default: one for HF_ENDPOINT with the user's token).
        log: receives the report lines.
    """
    if repo_id is not None and repo_id_problem(repo_id):
        raise HubError(f"--repo-id: {repo_id_problem(repo_id)}.")
    ex = read_export(folder)
    repo_id = repo_id or ex.release.get("repo_id")
    if not repo_id:
        raise HubError(f"{ex.path}: no Hub repo recorded at export; pass --repo-id ORG/NAME.")
    # what the manifest will say: refuse now rather than after an upload
    try:
        entry = manifest_entry(ex, repo_id)
    except NotARegistryTag as e:
        entry = None  # pushable, but not a registry tag
        if not ex.release.get("repo_id"):
            raise HubError(
                f"{e} Its card loads {ex.name!r}, a registry tag it never becomes: export again with --repo-id "
                f"{repo_id} so that the card loads 'hf-hub:{repo_id}'."
            ) from None
        log(f"note: {e}")
    old = None
    if entry is not None:  # a registry tag: what the manifest already says of it
        old = find_release(ex.architecture, ex.tag, read_manifest(manifest))
    if old is not None and old["sha256"] != ex.sha256:
        raise HubError(
            f"{ex.path}: its weights (sha256 {ex.sha256[:12]}...) are not the {old['state']} "
            f"{ex.name} ({old['sha256'][:12]}...); "
            + (
                "published weights never change: export under a new tag."
                if old["state"] == "published"
                else "stage the folder again first."
            )
        )
    if old is not None and old["repo_id"] != repo_id:
        raise HubError(f"{ex.name} is {old['state']} for {old['repo_id']}, not {repo_id}.")
    files = ex.files
    staged = (old.get("files") or {}) if old is not None and old["state"] == "staged" else {}
    if staged:
        changed = sorted(n for n in set(files) | set(staged) if files.get(n) != staged.get(n))
        if changed:
            again = f"zerosnet-hub stage {ex.path}" + (f" --manifest {manifest}" if manifest else "")
            raise HubError(
                f"{ex.path}: {', '.join(changed)} changed since {ex.name} was staged; verify and stage the folder "
                f"again (`{again}`), or export it again."
            )
    publish = entry is not None and not private  # a private repo refuses the users of a published tag
    if publish:
        check_recordable(ex, repo_id, manifest)  # refuse now what the manifest would refuse after the upload
    if revision != "main" and ex.release.get("repo_id"):
        log(
            f"note: the card's snippets load 'hf-hub:{repo_id}', its main branch; the weights of branch {revision} "
            f"load with timm.create_model('hf-hub:{repo_id}@{revision}', pretrained=True)"
        )
    # the round trip, also for a staged folder: what is uploaded is what reproduces. A dry run checks it too, so
    # that one that passes is followed by no push refused for it
    verify_export(folder)
    if dry_run:
        log(
            "dry run: the weights reproduce golden.safetensors here (the round trip); would upload to "
            + "\n".join(format_plan(repo_id, revision, private, files))
        )
        log(
            f"  and delete the other files of branch {revision} in the same commit (left by earlier pushes; "
            ".gitattributes stays); a dry run does not ask the Hub which they are"
        )
        if publish:
            log(f"  then record {ex.name} as published in {manifest or manifest_path()}")
        elif entry is not None:
            log(_private_note(ex.name, repo_id, old, manifest))
        log("nothing was uploaded and nothing was written.")
        return PushResult(repo_id, revision, None, None, files, None)

    if api is None:
        from huggingface_hub import HfApi, get_token

        import timm_zerosnet

        token = get_token()
        if not token:
            raise HubUnreachable("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`.")
        api = HfApi(
            endpoint=hub_endpoint(),
            token=token,
            library_name="timm_zerosnet",
            library_version=timm_zerosnet.__version__,
        )
    else:
        token = None
    step = "create"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        # create_repo leaves an existing repo's visibility as it is: never upload into a public one with --private,
        # nor publish a tag from a private one without it
        if private or publish:
            step = "read the visibility of"
            is_private = api.repo_info(repo_id).private
            if private and is_private is False:
                raise HubError(
                    f"{repo_id} exists and is public, and --private does not change an existing repo: make it "
                    "private on the Hub (its Settings) and push again, or drop --private to publish there. Nothing "
                    "was uploaded."
                )
            if publish and is_private is True:
                raise HubError(
                    f"{repo_id} exists and is private, so {ex.name} would be published in the manifest for users "
                    f"(anyone calling timm.create_model('{ex.name}', pretrained=True)) that the repo refuses: make "
                    "it public on the Hub (its Settings) and push again, or add --private to upload there without "
                    "publishing the tag. Nothing was uploaded."
                )
        if revision != "main":
            step = f"create branch {revision} of"
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        step = f"list the files of branch {revision} of"
        stale = [
            name for name in _branch_files(api, repo_id, revision) if name not in files and name != ".gitattributes"
        ]
        step = "upload to"
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(ex.path),
            revision=revision,
            allow_patterns=[glob.escape(name) for name in files],  # fnmatch patterns: each name matches itself
            delete_patterns=[glob.escape(name) for name in stale] or None,  # in the same commit as the upload
            commit_message=commit_message or f"Add {ex.name}",
        )
    except HubError:  # our own refusal, already one line
        raise
    except Exception as e:  # network, offline mode, HTTP errors: one line each
        raise _hub_failure(e, step, repo_id, token) from None
    commit = info.oid
    log(f"pushed {len(files)} files to {repo_id}@{revision}: commit {commit} ({info.commit_url})")
    if stale:
        log(
            f"  and deleted {len(stale)} file{'s' if len(stale) > 1 else ''} of earlier pushes that the folder does "
            f"not hold (still in the repo's history): {', '.join(stale)}"
        )
    if entry is not None and not publish:
        log(_private_note(ex.name, repo_id, old, manifest))
    recorded = record_published(folder, repo_id, commit, manifest, log) if publish else None
    return PushResult(repo_id, revision, commit, info.commit_url, files, recorded, stale)
