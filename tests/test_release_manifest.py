"""The release manifest: its schema, the pretrained cfgs generated from it, registering a temporary one, staging."""

from __future__ import annotations

import copy
import json
import re

import pytest
import safetensors.torch
import timm
from test_hub_export import CIFAR10_LABELS, MODEL, REPO, make_run
from timm.models import generate_default_cfgs

from timm_zerosnet.hub import HubError
from timm_zerosnet.hub.cli import main
from timm_zerosnet.hub.export import export
from timm_zerosnet.hub.manifest import stage
from timm_zerosnet.models.multistep import cifar_cfg
from timm_zerosnet.release import (
    MANIFEST_FORMAT,
    ReleaseError,
    active_manifest,
    is_our_model,
    load_manifest,
    manifest_path,
    released_cfgs,
    repo_id_problem,
    use_manifest,
    validate_manifest,
    verify_sha256,
    with_released,
)

SHA = "3" * 64
ENTRY = dict(
    model=MODEL,
    tag="c10",
    repo_id=REPO,
    state="staged",
    hub_commit=None,
    sha256=SHA,
    size=1,
    num_classes=10,
    in_chans=3,
    dataset="uoft-cs/cifar10",
    license="apache-2.0",
    recipe="zerosnet_cifar10",
    data_config=dict(
        input_size=[3, 32, 32],
        mean=[0.4914, 0.4822, 0.4465],
        std=[0.2023, 0.1994, 0.2010],
        interpolation="bilinear",
        crop_pct=1.0,
        crop_mode="center",
    ),
    metrics=dict(top1=92.5, top5=99.7, split="test"),
)


def manifest_with(*entries) -> dict:
    return dict(format=MANIFEST_FORMAT, releases=[dict(ENTRY, **e) for e in entries])


def test_shipped_manifest_is_valid_and_matches_list_pretrained():
    shipped = load_manifest()
    assert manifest_path().name == "releases.json" and shipped == active_manifest()
    for entry in shipped["releases"]:
        assert entry["state"] in ("staged", "published")
        if entry["state"] == "published":
            assert len(entry["hub_commit"]) == 40
    ours = {name for name in timm.list_pretrained() if is_our_model(name.split(".")[0])}
    assert ours == {f"{e['model']}.{e['tag']}" for e in shipped["releases"]}


def test_pretrained_without_released_weights_lists_tags_and_how_to_publish():
    released = {e["model"] for e in active_manifest()["releases"]}
    model = next(n for n in timm.list_models(module="zerosnet") if n not in released)
    with pytest.raises(RuntimeError, match=r"has no released weights.*zerosnet-train.*zerosnet-hub"):
        timm.create_model(model, pretrained=True)


def test_released_cfgs_carry_hub_id_data_config_and_metrics():
    base = cifar_cfg(paper_ids="arXiv:2206.13100")
    cfgs = released_cfgs(
        MODEL,
        manifest_with(
            {},
            dict(
                tag="c100",
                repo_id="testorg/x.c100",
                num_classes=100,
                data_config=dict(ENTRY["data_config"], input_size=[3, 64, 64]),
                state="published",
                hub_commit="b" * 40,
            ),
        ),
        base=base,
    )
    assert list(cfgs) == ["c10", "c100"]
    c10, c100 = cfgs["c10"], cfgs["c100"]
    assert c10["hf_hub_id"] == REPO and c10["num_classes"] == 10 and c10["input_size"] == (3, 32, 32)
    assert c10["mean"] == (0.4914, 0.4822, 0.4465) and c10["crop_pct"] == 1.0 and c10["interpolation"] == "bilinear"
    assert c10["license"] == "apache-2.0" and c10["paper_ids"] == "arXiv:2206.13100" and c10["first_conv"] == "conv1"
    assert c10["pool_size"] == (8, 8) and c100["pool_size"] == (16, 16)
    assert "top-1 92.50%" in c10["description"] and f"sha256 {SHA}" in c10["notes"]
    assert "staged: not pushed to the Hub yet" in c10["notes"] and "origin_url" not in c10
    assert c100["origin_url"] == "https://huggingface.co/testorg/x.c100" and "url" not in c100
    assert released_cfgs("zerosnet32_cifar", manifest_with({})) == {}


def test_with_released_makes_the_release_the_default_and_keeps_untrained():
    family = {f"{MODEL}.untrained": cifar_cfg(), "zerosnet32_cifar.untrained": cifar_cfg()}
    merged = with_released(family, manifest_with({}))
    assert list(merged) == [f"{MODEL}.c10", f"{MODEL}.untrained", "zerosnet32_cifar.untrained"]
    default_cfgs = generate_default_cfgs(merged)
    assert list(default_cfgs[MODEL].tags) == ["c10", "untrained"] and default_cfgs[MODEL].is_pretrained
    assert list(default_cfgs["zerosnet32_cifar"].tags) == ["untrained"]


def test_use_manifest_registers_the_tags_and_restores_the_registry():
    before = timm.list_pretrained("zerosnet*")
    default_before = timm.models.get_pretrained_cfg(MODEL).tag
    with use_manifest(manifest_with({}, dict(model="lmresnet20_cifar", repo_id="testorg/lm.c10"))):
        assert {f"{MODEL}.c10", "lmresnet20_cifar.c10"} <= set(timm.list_pretrained())
        assert timm.models.get_pretrained_cfg(MODEL).tag == "c10"  # the release is the default tag
        assert timm.models.get_pretrained_cfg(f"{MODEL}.untrained").hf_hub_id is None
        assert timm.create_model(f"{MODEL}.untrained").num_classes == 10
        assert active_manifest()["releases"][0]["tag"] == "c10"
    assert timm.list_pretrained("zerosnet*") == before
    assert timm.models.get_pretrained_cfg(MODEL).tag == default_before
    assert active_manifest() == load_manifest()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(state="released"), "state must be one of"),
        (dict(sha256="abc"), "sha256 must be 64 lowercase hex"),
        (dict(state="published"), "a published release needs its 40-hex hub_commit"),
        (dict(repo_id="timm/zerosnet20_cifar.c10"), "in timm's own organisation"),
        (dict(repo_id="TIMM/zerosnet20_cifar.c10"), "in timm's own organisation"),
        (dict(repo_id="noslash"), "must be 'org/name'"),
        (dict(repo_id="org/a--b"), "not a valid Hub repo id"),
        (dict(tag="untrained"), "not be 'untrained'"),
        (dict(tag="C10.x"), r"tag 'C10.x' must match \[a-z0-9_\]\+"),
        (dict(data_config=None), "missing data_config"),
        (dict(label_names=["a", "b"]), "label_names must be a list of num_classes strings"),
        (dict(data_config=dict(input_size=[32, 32])), r"data_config needs input_size \(C, H, W\)"),
        # `zerosnet-hub list` failed on these with a ValueError traceback while formatting them
        (dict(metrics=dict(top1="high")), "metrics must give top1, top5, loss as numbers, got"),
        (dict(metrics=[1]), "metrics must give top1, top5, loss as numbers"),
        (dict(num_classes="ten"), "num_classes must be a count >= 1, got 'ten'"),
    ],
)
def test_manifest_errors_name_the_entry_and_the_problem(change, message):
    with pytest.raises(ReleaseError, match=message):
        validate_manifest(manifest_with(change))


def test_manifest_refuses_duplicates_and_bad_files(tmp_path):
    with pytest.raises(ReleaseError, match=r"zerosnet20_cifar\.c10 is listed twice"):
        validate_manifest(manifest_with({}, {}))
    with pytest.raises(ReleaseError, match="'format' must be"):
        validate_manifest({"releases": []})
    (tmp_path / "bad.json").write_text('{"format": ')
    with pytest.raises(ReleaseError, match=r"bad\.json: not valid JSON"):
        load_manifest(tmp_path / "bad.json")


def test_verify_sha256_refuses_a_different_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not the weights")
    with pytest.raises(
        ReleaseError,
        match=rf"refusing .*model\.safetensors: its sha256 is [0-9a-f]{{64}} but the "
        rf"release manifest records {SHA} for m\.t",
    ):
        verify_sha256(path, SHA, "m.t")


def test_stage_records_a_verified_export(tmp_path, capsys):
    folder = export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    entry = stage(folder, manifest)
    data = load_manifest(manifest)
    assert data["releases"] == [entry]
    assert entry["state"] == "staged" and entry["hub_commit"] is None and entry["repo_id"] == REPO
    assert entry["sha256"] == entry["files"]["model.safetensors"]["sha256"] and entry["num_classes"] == 10
    assert entry["data_config"]["input_size"] == [3, 32, 32] and entry["metrics"]["top1"] == 90.0
    assert entry["dataset"] == "uoft-cs/cifar10" and entry["recipe"] == "zerosnet_cifar10"
    assert entry["label_names"] == CIFAR10_LABELS
    with use_manifest(manifest):  # the registry tag carries them as the hf-hub: route does (config.json)
        assert timm.models.get_pretrained_cfg(f"{MODEL}.c10").label_names == tuple(CIFAR10_LABELS)
    assert stage(folder, manifest)["sha256"] == entry["sha256"]  # staging again: same single entry
    assert len(load_manifest(manifest)["releases"]) == 1

    published = copy.deepcopy(data)
    published["releases"][0].update(state="published", hub_commit="c" * 40, sha256=SHA)
    manifest.write_text(json.dumps(published))
    with pytest.raises(HubError, match="already published with other weights.*export under a new tag"):
        stage(folder, manifest)

    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", tag="other", repo_id=REPO).path
    with pytest.raises(HubError, match="already holds zerosnet20_cifar.c10; one repo per tag"):
        stage(other, manifest)


def test_stage_refuses_weights_that_need_model_arguments(tmp_path):
    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, model_kwargs={"lam": -1.5})))
    folder = export(run, tmp_path / "export", repo_id=REPO).path
    assert json.loads((folder / "config.json").read_text())["model_args"]["lam"] == -1.5
    with pytest.raises(HubError, match=r"trained with model arguments \{'lam': -1.5\}.*'hf-hub:"):
        stage(folder, tmp_path / "releases.json")


@pytest.mark.parametrize(
    "repo_id, problem",
    [
        ("testorg/zerosnet20_cifar.c10", None),
        ("Org-1/name_2.v3", None),
        ("org/a--b", "not a valid Hub repo id"),
        ("org/a..b", "not a valid Hub repo id"),
        ("org/name.", "not a valid Hub repo id"),
        ("org/name-", "not a valid Hub repo id"),
        ("org/" + "a" * 97, "not a valid Hub repo id"),
        ("a/b/c", "must be 'org/name'"),
        ("name", "must be 'org/name'"),
        (None, "must be 'org/name'"),
        ("timm/x", "in timm's own organisation"),
        ("Timm/x", "in timm's own organisation"),
    ],
)
def test_repo_id_problem_follows_the_hub_rules(repo_id, problem):
    found = repo_id_problem(repo_id)
    assert found is None if problem is None else problem in found


def test_export_does_not_inherit_the_cfg_of_a_released_default_tag(tmp_path):
    """A release registered as the model's default tag: an export of other weights gets the family's own cfg, not
    that release's description, notes, Hub origin or data config."""
    other = dict(tag="other", data_config=dict(ENTRY["data_config"], mean=[0.1, 0.2, 0.3]), metrics=dict(top1=12.5))
    with use_manifest(manifest_with(other)):
        assert "top-1 12.50%" in timm.models.get_pretrained_cfg(MODEL).description  # the default tag
        weights = tmp_path / "w.safetensors"
        safetensors.torch.save_file(timm.create_model(MODEL, num_classes=10).state_dict(), str(weights))
        logs = []
        out = export(weights, tmp_path / "out", model=MODEL, tag="c10", dataset="cifar10", log=logs.append).path
    cfg = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert not {"description", "notes", "origin_url", "hf_hub_id"} & cfg.keys()
    assert cfg["tag"] == "c10" and cfg["mean"] == [0.4914, 0.4822, 0.4465]  # the family's default, said in the log
    assert any("recorded no input_size, mean, std" in line for line in logs)


def test_a_release_std_other_than_the_family_default_reaches_the_pretrained_cfg():
    base = cifar_cfg(paper_ids="arXiv:2206.13100")
    assert tuple(base["std"]) != (0.25, 0.25, 0.25)
    data_config = dict(ENTRY["data_config"], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    c10 = released_cfgs(MODEL, manifest_with(dict(data_config=data_config)), base=base)["c10"]
    assert c10["std"] == (0.25, 0.25, 0.25) and c10["mean"] == (0.5, 0.5, 0.5)


def test_stage_from_the_command_line_takes_the_repo_id(tmp_path, capsys):
    """An export made without --repo-id is staged for the repo given to `zerosnet-hub stage --repo-id`."""
    folder = export(make_run(tmp_path / "run"), tmp_path / "export").path
    manifest = tmp_path / "releases.json"
    repo = "testorg/zerosnet20_cifar.staged"
    assert main(["stage", str(folder), "--repo-id", repo, "--manifest", str(manifest)]) == 0
    (entry,) = load_manifest(manifest)["releases"]
    assert entry["repo_id"] == repo and entry["state"] == "staged" and f"({repo}, sha256" in capsys.readouterr().out


# ----- mutation audit: writing the manifest -----


def test_write_manifest_validates_sorts_and_refuses_to_write_an_invalid_one(tmp_path):
    """Entries are written sorted by model and tag (stable diffs); an invalid manifest is refused with the file left
    as it was."""
    from timm_zerosnet.hub.manifest import write_manifest

    path = tmp_path / "releases.json"
    unsorted = manifest_with(dict(tag="zz", repo_id="testorg/zz"), dict(model="lmresnet20_cifar", repo_id="o/l"), {})
    write_manifest(unsorted, path)
    assert [(e["model"], e["tag"]) for e in load_manifest(path)["releases"]] == [
        ("lmresnet20_cifar", "c10"),
        (MODEL, "c10"),
        (MODEL, "zz"),
    ]
    before = path.read_bytes()
    with pytest.raises(HubError, match="sha256 must be 64 lowercase hex"):
        write_manifest(manifest_with(dict(sha256="abc")), path)
    assert path.read_bytes() == before


def test_a_failed_write_leaves_the_manifest_whole_and_no_temporary_file(tmp_path, monkeypatch):
    """The manifest is written to a temporary file and renamed: a write that fails half-way (disk full) leaves the
    earlier manifest intact and nothing beside it."""
    from pathlib import Path

    from timm_zerosnet.hub.manifest import write_manifest

    path = tmp_path / "releases.json"
    write_manifest(manifest_with({}), path)
    before = path.read_bytes()

    def half_write(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(manifest_with({}, dict(tag="zz", repo_id="testorg/zz")), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["releases.json"]


def test_a_read_only_manifest_is_refused_before_verifying(tmp_path, monkeypatch):
    """A manifest file that cannot be written (a read-only install) is refused even in a writable folder."""
    import os
    from pathlib import Path

    from timm_zerosnet import hub

    folder = export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    manifest.write_text(json.dumps(dict(format=MANIFEST_FORMAT, releases=[])))
    real_access = os.access
    monkeypatch.setattr(hub.manifest.os, "access", lambda p, mode: Path(p) != manifest and real_access(p, mode))
    with pytest.raises(HubError, match=r"releases\.json is not writable \(the file and its folder must be\)"):
        stage(folder, manifest)
    assert json.loads(manifest.read_text()) == dict(format=MANIFEST_FORMAT, releases=[])


def test_stage_needs_a_repo_id_and_records_the_exported_license(tmp_path):
    """An export made without --repo-id cannot be staged without one; the license given at export is the one the
    manifest (and so the registry tag) carries."""
    run = make_run(tmp_path / "run")
    manifest = tmp_path / "releases.json"
    bare = export(run, tmp_path / "bare", license="mit").path
    with pytest.raises(HubError, match="no Hub repo recorded at export; pass --repo-id ORG/NAME"):
        stage(bare, manifest)
    assert not manifest.exists()
    entry = stage(bare, manifest, repo_id=REPO)
    assert entry["license"] == "mit" and entry["repo_id"] == REPO
    with use_manifest(manifest):
        assert timm.models.get_pretrained_cfg(f"{MODEL}.c10").license == "mit"


def test_stage_records_the_data_config_the_weights_were_trained_with(tmp_path):
    """Whatever the run recorded (here not the family's defaults) is what the manifest and the registry tag carry:
    the data config of config.json, key for key, and the input channels of a one-channel model."""
    data_config = dict(
        input_size=[3, 32, 32],
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        interpolation="bicubic",
        crop_pct=0.875,
        crop_mode="squash",
    )
    folder = export(make_run(tmp_path / "run", data_config=data_config), tmp_path / "export", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    entry = stage(folder, manifest)
    assert entry["data_config"] == data_config and entry["in_chans"] == 3
    with use_manifest(manifest):
        cfg = timm.models.get_pretrained_cfg(f"{MODEL}.c10")
    assert (cfg.interpolation, cfg.crop_pct, cfg.crop_mode) == ("bicubic", 0.875, "squash")
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.std == (0.25, 0.25, 0.25)

    weights = tmp_path / "gray.safetensors"
    safetensors.torch.save_file(timm.create_model(MODEL, num_classes=10, in_chans=1).state_dict(), str(weights))
    gray = export(weights, tmp_path / "gray", model=MODEL, tag="gray", repo_id="testorg/gray").path
    entry = stage(gray, manifest)
    assert entry["in_chans"] == 1 and entry["data_config"]["input_size"] == [1, 32, 32]


def test_staging_published_weights_again_leaves_the_manifest_unchanged(tmp_path):
    """The very weights already published: staging them again is a no-op that says so, not a refusal, and the
    entry keeps its Hub commit."""
    from timm_zerosnet.hub.manifest import record_published

    folder = export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    stage(folder, manifest)
    record_published(folder, REPO, "c" * 40, manifest)
    before = manifest.read_bytes()
    logs = []
    entry = stage(folder, manifest, log=logs.append)
    assert entry["state"] == "published" and entry["hub_commit"] == "c" * 40
    assert manifest.read_bytes() == before
    assert any("already published with these weights; manifest unchanged" in line for line in logs)


def test_staging_other_weights_under_a_staged_tag_says_it_replaces_them(tmp_path):
    first = export(make_run(tmp_path / "run"), tmp_path / "a", repo_id=REPO).path
    second = export(make_run(tmp_path / "run2", seed=1), tmp_path / "b", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    old = stage(first, manifest)["sha256"]
    logs = []
    new = stage(second, manifest, log=logs.append)["sha256"]
    assert new != old and [e["sha256"] for e in load_manifest(manifest)["releases"]] == [new]
    assert any(f"replacing the staged weights {old[:12]}... with {new[:12]}..." in line for line in logs)


def test_export_then_stage_from_the_command_line_and_overwrite_it(tmp_path):
    """`zerosnet-hub export ... --stage` stages what it wrote; an existing --out is replaced only with --overwrite,
    never while it holds the staged weights (another export may not reproduce them); once the user removed it,
    staging again records the new weights."""
    import hashlib
    import shutil

    out, manifest = tmp_path / "export", tmp_path / "releases.json"
    argv = ["--out", str(out), "--repo-id", REPO, "--manifest", str(manifest)]
    assert main(["export", str(make_run(tmp_path / "run")), *argv, "--stage"]) == 0
    (entry,) = load_manifest(manifest)["releases"]
    written = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert entry["state"] == "staged" and entry["sha256"] == written
    assert json.loads((out / "release.json").read_text())["repo_id"] == REPO  # the card loads 'hf-hub:<repo>'
    run2 = make_run(tmp_path / "run2", seed=1)
    assert main(["export", str(run2), *argv, "--stage"]) == 1
    assert main(["export", str(run2), *argv, "--overwrite", "--stage"]) == 1
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == written
    assert load_manifest(manifest)["releases"] == [entry]
    shutil.rmtree(out)
    assert main(["export", str(run2), *argv, "--stage"]) == 0
    (entry2,) = load_manifest(manifest)["releases"]
    rewritten = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert entry2["sha256"] == rewritten != written


# ----- mutation audit: the schema and the cfgs generated from it -----


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model=""), "missing model"),
        (dict(label_names=list(range(10))), "label_names must be a list of num_classes strings"),
    ],
)
def test_manifest_refuses_an_empty_field_and_labels_that_are_not_strings(change, message):
    with pytest.raises(ReleaseError, match=message):
        validate_manifest(manifest_with(change))
    with pytest.raises(ReleaseError, match="'releases' must be a list"):
        validate_manifest(dict(format=MANIFEST_FORMAT, releases=None))


def test_pool_size_of_another_input_size_is_the_feature_map_or_unknown():
    """The release's input size scales the family's pool size where the reduction divides it; the feature map of
    the network itself is the reference."""
    import torch

    base = cifar_cfg()
    model = timm.create_model(MODEL).eval()
    pool, feature_map = {}, {}
    for side in (36, 30):
        data_config = dict(ENTRY["data_config"], input_size=[3, side, side])
        pool[side] = released_cfgs(MODEL, manifest_with(dict(data_config=data_config)), base=base)["c10"]["pool_size"]
        with torch.no_grad():
            feature_map[side] = tuple(model.forward_features(torch.zeros(1, 3, side, side)).shape[-2:])
    assert pool[36] == feature_map[36] == (9, 9)
    assert pool[30] in (None, feature_map[30])  # 30 is not a multiple of the reduction, 4: not scaled


def test_description_and_notes_name_the_split_and_both_accuracies():
    cfg = released_cfgs(MODEL, manifest_with(dict(metrics=dict(top1=80.0, top5=95.25))), base=cifar_cfg())["c10"]
    assert cfg["description"] == "Trained on uoft-cs/cifar10, top-1 80.00% on its validation split."
    assert "top1 80.0" in cfg["notes"] and "top5 95.25" in cfg["notes"]


def test_sha256_of_a_file_rewritten_in_place_is_computed_again(tmp_path):
    """The hash is remembered per path, size and modification time: a file replaced by other bytes of the same size
    (a re-download) is hashed again, never taken for the earlier one."""
    import hashlib
    import os

    from timm_zerosnet.release import sha256_file

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"a" * 64)
    assert sha256_file(path) == hashlib.sha256(b"a" * 64).hexdigest()
    st = path.stat()
    path.write_bytes(b"b" * 64)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert sha256_file(path) == hashlib.sha256(b"b" * 64).hexdigest()
    with pytest.raises(ReleaseError, match="its sha256 is"):
        verify_sha256(path, hashlib.sha256(b"a" * 64).hexdigest(), "m.t")


def test_list_from_the_command_line_shows_each_state(tmp_path, capsys):
    path = tmp_path / "releases.json"
    path.write_text(json.dumps(dict(format=MANIFEST_FORMAT, releases=[])))
    assert main(["list", "--manifest", str(path)]) == 0
    assert capsys.readouterr().out == "no releases in the manifest\n"
    published = dict(tag="c100", repo_id="testorg/x.c100", state="published", hub_commit="b" * 40, metrics={})
    path.write_text(json.dumps(manifest_with({}, published)))
    assert main(["list", "--manifest", str(path)]) == 0
    staged_line, published_line = capsys.readouterr().out.splitlines()
    assert staged_line.startswith(f"{MODEL}.c10 ") and f" staged    {REPO}  sha256 {SHA[:12]}..." in staged_line
    assert staged_line.endswith("top-1 92.50")
    assert f" published testorg/x.c100@{'b' * 12}  sha256 " in published_line and published_line.endswith("top-1 -")


def test_a_runs_default_named_weights_file_is_recognised_where_run_json_records_no_name(tmp_path):
    """run.json records ``best: null`` when it names no file for the best weights: best.safetensors of the run is
    still its best weights (timm_zerosnet.run_layout), and the export says so."""
    import shutil

    run = make_run(tmp_path / "run")
    assert json.loads((run / "run.json").read_text())["weights"]["best"] is None
    shutil.copyfile(run / "model.safetensors", run / "best.safetensors")
    out = export(run / "best.safetensors", tmp_path / "best", repo_id=REPO).path
    assert json.loads((out / "release.json").read_text())["weights"] == "best"


def test_export_from_the_command_line_takes_the_weights_and_the_dataset_asked_for(tmp_path):
    run = make_run(tmp_path / "run", dataset=dict(name="folder", val_split="validation"))  # an ImageFolder run
    out = tmp_path / "ema"
    argv = ["export", str(run), "--out", str(out), "--weights", "ema", "--dataset", "myorg/flowers", "--tag", "flowers"]
    assert main(argv) == 0
    release = json.loads((out / "release.json").read_text())
    assert release["weights"] == "ema" and release["dataset"] == "myorg/flowers"
    exported = safetensors.torch.load_file(str(out / "model.safetensors"))
    ema = safetensors.torch.load_file(str(run / "model_ema.safetensors"))
    assert exported.keys() == ema.keys() and all(exported[k].equal(v) for k, v in ema.items())


def test_a_released_tag_never_inherits_the_familys_weights_source():
    """The family cfg's own weights source (a url or file of other weights) is dropped: the released tag loads its
    Hub repo, through the sha256 check, and nothing else."""
    base = dict(cifar_cfg(), url="https://example.test/other.pth", file="/other/weights.safetensors", source="x")
    cfg = released_cfgs(MODEL, manifest_with({}), base=base)["c10"]
    assert not {"url", "file", "source"} & cfg.keys() and cfg["hf_hub_id"] == REPO


# ----- --manifest: a folder, a mistyped path, given where nothing reads it -----


def test_a_manifest_path_that_is_a_folder_is_refused_before_verifying(tmp_path, monkeypatch, capsys):
    """`stage --manifest DIR` says the path is a folder before the round trip (which it used to run, and then fail
    writing the manifest with a traceback); `list` says the same."""
    from timm_zerosnet import hub

    folder = export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path
    manifests = tmp_path / "manifests"
    manifests.mkdir()

    def not_verified(*args, **kwargs):
        raise AssertionError("verified before the manifest path was checked")

    monkeypatch.setattr(hub.manifest, "verify_export", not_verified)
    expected = f"{manifests} is a folder, not a manifest file: pass --manifest with the path of the file"
    with pytest.raises(HubError, match=re.escape(expected)):
        stage(folder, manifests)
    for argv in (["stage", str(folder)], ["list"]):
        assert main([*argv, "--manifest", str(manifests)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not any(manifests.iterdir())


def test_a_file_that_cannot_be_read_or_written_is_one_line_from_the_command_line(tmp_path, monkeypatch, capsys):
    """Any OSError left (a folder where a file should be, a full disk) is one line naming the path, exit code 1."""
    from timm_zerosnet import hub

    path = tmp_path / "releases.json"

    def fail(*args, **kwargs):
        raise IsADirectoryError(21, "Is a directory", str(path))

    monkeypatch.setattr(hub.manifest, "stage", fail)
    assert main(["stage", str(tmp_path / "export"), "--manifest", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"zerosnet-hub stage: error: [Errno 21] Is a directory: '{path}'\n"


def test_export_refuses_a_manifest_without_stage(tmp_path, capsys):
    """Only --stage writes a manifest: `export --manifest M` without it is a usage error, before anything is written
    (it used to export and silently ignore --manifest)."""
    out, manifest = tmp_path / "export", tmp_path / "releases.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(make_run(tmp_path / "run")), "--out", str(out), "--manifest", str(manifest)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--manifest is the manifest --stage writes; add --stage" in err
    assert not out.exists() and not manifest.exists()


def test_list_refuses_a_manifest_that_does_not_exist_and_stage_creates_it(tmp_path, monkeypatch, capsys):
    """`list --manifest` of a mistyped path says there is no manifest there (it used to list no releases); `stage`
    creates the manifest it is given; without --manifest, a package without releases.json still lists none."""
    from timm_zerosnet import hub

    typo = tmp_path / "relases.json"
    assert main(["list", "--manifest", str(typo)]) == 1
    err = capsys.readouterr().err
    expected = f"no manifest at {typo}: check the --manifest path (or leave it out for the package's)."
    assert err == f"zerosnet-hub list: error: {expected}\n"
    assert not typo.exists()
    folder = export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path
    assert main(["stage", str(folder), "--manifest", str(typo)]) == 0
    capsys.readouterr()
    assert main(["list", "--manifest", str(typo)]) == 0
    assert capsys.readouterr().out.startswith(f"{MODEL}.c10 ")
    monkeypatch.setattr(hub.manifest, "manifest_path", lambda: tmp_path / "missing" / "releases.json")
    assert main(["list"]) == 0
    assert capsys.readouterr().out == "no releases in the manifest\n"


def test_stage_refuses_a_bad_repo_id_as_the_option_and_never_advises_exporting_with_it(tmp_path, capsys):
    """`stage --repo-id timm/x` of an export for another repo said "export again with --repo-id timm/x", which export
    refuses; of an export without a repo it named "releases[0]" of the manifest. Both now name --repo-id first."""
    run = make_run(tmp_path / "run")
    for_repo = export(run, tmp_path / "for_repo", repo_id=REPO).path
    no_repo = export(run, tmp_path / "no_repo").path
    manifest = tmp_path / "releases.json"
    for folder in (for_repo, no_repo):
        for bad in ("timm/x", "me/a--b"):
            with pytest.raises(HubError, match=r"^--repo-id: repo id .*\.$") as e:
                stage(folder, manifest, bad)
            assert "export again" not in str(e.value) and "releases[" not in str(e.value)
            assert main(["stage", str(folder), "--repo-id", bad, "--manifest", str(manifest)]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "error: --repo-id: repo id" in err, err
    assert not manifest.exists()


def test_one_repo_per_tag_says_what_to_do(tmp_path):
    """A second tag staged for a repo that already holds one was refused without saying how to go on."""
    run = make_run(tmp_path / "run")
    manifest = tmp_path / "releases.json"
    stage(export(run, tmp_path / "c10", repo_id=REPO).path, manifest)
    other = export(run, tmp_path / "other", repo_id=REPO, tag="other").path
    with pytest.raises(
        HubError,
        match=re.escape(
            f"{REPO} already holds {MODEL}.c10; one repo per tag: export {MODEL}.other again with a --repo-id of its "
            f"own (e.g. testorg/{MODEL}.other)."
        ),
    ):
        stage(other, manifest)


# ----- audit: a malformed manifest given to use_manifest (or a user-edited releases.json) -----


@pytest.mark.parametrize(
    "change, message",
    [
        # a ValueError / TypeError naming neither the file nor the entry (at `import timm_zerosnet` for releases.json)
        (dict(data_config=dict(ENTRY["data_config"], input_size=["3", "x", "32"])), r"input_size \(C, H, W\): 3 whole"),
        (dict(data_config=dict(ENTRY["data_config"], mean="0.5")), "mean must be 3 numbers"),
        (dict(model=["x"]), r"model must be the name of an architecture \(no tag\), got \['x'\]"),
        (dict(model=5), "model must be the name of an architecture"),
        # accepted, and failing later where the tag was used (transforms, install-local's "--revision must be")
        (dict(data_config=dict(ENTRY["data_config"], input_size=[3, 0, 32])), "3 whole numbers >= 1"),
        (dict(data_config=dict(ENTRY["data_config"], mean=[0.5, 0.5])), r"mean must be 3 numbers .*got \[0.5, 0.5\]"),
        (dict(data_config=dict(ENTRY["data_config"], std=[0.2, 0.0, 0.2])), "std must be 3 positive numbers"),
        (dict(data_config=dict(ENTRY["data_config"], crop_pct="x")), "crop_pct must be a number > 0, got 'x'"),
        (dict(data_config=dict(ENTRY["data_config"], interpolation="cubic")), "interpolation must be one of nearest"),
        (dict(data_config=dict(ENTRY["data_config"], crop_mode="middle")), "crop_mode must be one of center"),
        (dict(hub_commit="xyz"), "hub_commit must be null or 40 lowercase hex digits, got 'xyz'"),
        (dict(in_chans=1), r"in_chans 1 is not the channel count of data_config's input_size \[3, 32, 32\]"),
        (dict(license=["mit"]), "license must be a string"),
    ],
)
def test_a_malformed_entry_is_named_and_leaves_the_registry_as_it_was(tmp_path, change, message):
    """use_manifest of a manifest whose entry timm_zerosnet could not turn into a pretrained cfg raised a bare
    ValueError / TypeError and left the registry switched to it (every later use_manifest failed the same way);
    other mistakes were accepted. Each is now refused naming the file, the entry and the value, nothing changed."""
    path = tmp_path / "releases.json"
    path.write_text(json.dumps(manifest_with(change)))
    before = timm.list_pretrained("zerosnet*")
    with pytest.raises(ReleaseError, match=rf"^{re.escape(str(path))}, releases\[0\].*{message}"):
        with use_manifest(path):
            pass
    assert active_manifest() == load_manifest() and timm.list_pretrained("zerosnet*") == before
    with use_manifest(manifest_with({})):
        assert f"{MODEL}.c10" in timm.list_pretrained("zerosnet*")


def test_use_manifest_refuses_an_entry_of_no_timm_zerosnet_architecture(tmp_path):
    """A misspelt model (or one of timm's own) was registered nowhere: its tag silently did not exist, and loading
    it said "has no released weights" or "Invalid pretrained tag" without naming the manifest."""
    path = tmp_path / "releases.json"
    for model, hint in (("zerosnet20_cfar", "did you mean zerosnet20_cifar"), ("resnet18", "did you mean")):
        path.write_text(json.dumps(manifest_with(dict(model=model))))
        expected = rf"releases\[0\] \({model}\.c10\): '{model}' is not an architecture of timm_zerosnet"
        with pytest.raises(ReleaseError, match=expected):
            with use_manifest(path):
                pass
        with pytest.raises(ReleaseError, match=hint):
            with use_manifest(manifest_with(dict(model=model))):
                pass
    assert active_manifest() == load_manifest()


def test_a_manifest_that_cannot_be_read_says_why(tmp_path):
    """A folder, a file saved as UTF-16, or something else than a manifest or its path gave IsADirectoryError,
    UnicodeDecodeError or "expected str, bytes or os.PathLike object" naming no manifest; a wrong format did not say
    which one it found."""
    with pytest.raises(ReleaseError, match=rf"^{re.escape(str(tmp_path))} is a folder, not a release manifest"):
        load_manifest(tmp_path)
    utf16 = tmp_path / "utf16.json"
    utf16.write_text(json.dumps(manifest_with({})), encoding="utf-16")
    with pytest.raises(ReleaseError, match=r"utf16\.json: not UTF-8 text .*save it as UTF-8 JSON"):
        load_manifest(utf16)
    with pytest.raises(TypeError, match="use_manifest takes a manifest .* or the path of one, got list"):
        with use_manifest([]):
            pass
    with pytest.raises(ReleaseError, match=r"'format' must be 'timm_zerosnet\.releases/1', got 'timm_zerosnet\.re"):
        validate_manifest(dict(manifest_with({}), format="timm_zerosnet.releases/2"))
    with pytest.raises(ReleaseError, match="a manifest is a JSON object with 'format'"):
        validate_manifest([])
    assert active_manifest() == load_manifest()


def test_accuracy_on_a_val_subset_is_published_as_such(tmp_path):
    """A run evaluated with --val-num-samples 1000 of CIFAR-10's test split: release.json's metrics carry the count,
    and the card's table, the Hub's model-index and the registry's description name the subset, as the card names a
    training subset; they had presented the figure as the split's accuracy."""
    from test_hub_export import front_matter

    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    info["dataset"].update(val_num_samples=1000)
    for k in ("final", "best"):
        if info["metrics"].get(k):
            info["metrics"][k]["val_samples"] = 1000
    (run / "run.json").write_text(json.dumps(info))
    folder = export(run, tmp_path / "export", repo_id=REPO).path
    assert json.loads((folder / "release.json").read_text())["metrics"]["val_num_samples"] == 1000
    card = (folder / "README.md").read_text()
    assert "| CIFAR-10 | test (evenly spaced subset of 1,000 images) | 1000 |" in card
    (result,) = front_matter(card)["model-index"][0]["results"]
    assert result["dataset"]["split"] == "test (evenly spaced subset of 1,000 images)"
    manifest = tmp_path / "releases.json"
    manifest.write_text(json.dumps({"format": MANIFEST_FORMAT, "releases": []}))
    stage(folder, manifest)
    description = released_cfgs(MODEL, json.loads(manifest.read_text()))["c10"]["description"]
    assert "top-1 90.00% on an evenly spaced subset of 1,000 images of its test split" in description
    # the whole split: no count, the split's name alone
    whole = export(make_run(tmp_path / "whole"), tmp_path / "whole_export", repo_id=REPO).path
    assert "val_num_samples" not in json.loads((whole / "release.json").read_text())["metrics"]
    assert "| CIFAR-10 | test | 10000 |" in (whole / "README.md").read_text()
