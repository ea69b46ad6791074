"""Real processes: a two-process `accelerate launch` run, and a run killed with SIGKILL then resumed.

Both run `python -m timm_zerosnet.train` in subprocesses on the embedded digits with one thread per process (CPU
kernels are then deterministic), offline, with their own HF_HOME so accelerate finds no user config.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import reset_accelerate
from timm_zerosnet.cpu_heap import ALLOCATOR_ENV
from timm_zerosnet.train import CheckpointManager, parse_args, train
from timm_zerosnet.validate import build_parser, validate

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    for key in ALLOCATOR_ENV:  # glibc's defaults, which zerosnet-train then changes (cpu_heap.keep_heap)
        env.pop(key, None)
    return env


def _train_argv(out: Path, name: str, *extra: str) -> list[str]:
    options = "--img-size 16 --train-num-samples 128 -b 16 --workers 0 --log-interval 0 --lr 0.05"
    return [*options.split(), "--output", str(out), "--experiment", name, *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_count_each_validation_sample_once(tmp_path):
    """Validation over 355 images (odd: the last batch is padded) gathered from two processes equals a
    single-process zerosnet-validate of the same checkpoint, correct count for correct count."""
    # accelerate's `--cpu` launcher starts several processes only through mpirun; `--multi_gpu` starts torchrun
    # workers, which use gloo on CPU (no GPU visible, and zerosnet-train's --cpu keeps them there on GPU machines).
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no"
    launch += f" --dynamo_backend no --main_process_port {_free_port()} -m timm_zerosnet.train --cpu"
    extra = "--epochs 3 -vb 32 --train-num-samples 1442 --lr 0.05 --log-with tensorboard".split()
    cmd = [sys.executable, *launch.split(), *_train_argv(tmp_path, "ddp", *extra)]
    env = dict(_env(tmp_path), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    assert proc.stdout.count("CPU heap kept") == 1  # both processes keep their heap; rank 0 says so
    run_dir = tmp_path / "ddp"
    logged = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    assert len(logged) == 3 and info["training"]["num_processes"] == 2
    assert logged[-1]["top1"] > 50  # predictions worth comparing, not one constant class
    assert info["training"]["global_batch_size"] == 32

    out = validate(build_parser().parse_args(["--checkpoint", str(run_dir), "--workers", "0", "-b", "50"]))
    reset_accelerate()
    clean = out["results"]["clean"]
    ddp = logged[-1]
    print(f"two processes: {ddp['val_correct1']}/{ddp['val_samples']}; validate: {clean['correct1']}/{clean['count']}")
    assert clean["count"] == ddp["val_samples"] == 355
    assert clean["correct1"] == ddp["val_correct1"]
    assert clean["correct5"] == ddp["val_correct5"]

    # only the main process wrote the run's files: one row per epoch, one tracker process, the state holds both RNGs
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 4
    events = list((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert events and len({p.name.split(".")[-2] for p in events}) == 1  # <time>.<host>.<pid>.<n>: one writer
    state = CheckpointManager(run_dir).latest()
    assert sorted(p.name for p in state.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]
    expected = (
        "args.yaml best.safetensors checkpoints curves.png logs metrics.csv metrics.json model.safetensors run.json"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == expected.split()


def test_two_processes_keep_one_ema_and_their_state_needs_two_processes(tmp_path):
    """Each process normalises its own shard, so its BatchNorm statistics differ: the EMA must still be one model,
    the one that is evaluated (on both shards), logged and saved. A two-process state refuses a one-process resume."""
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no"
    launch += f" --dynamo_backend no --main_process_port {_free_port()} -m timm_zerosnet.train --cpu"
    extra = "--epochs 2 --val-num-samples 33 --model-ema --model-ema-decay 0.9".split()
    cmd = [sys.executable, *launch.split(), *_train_argv(tmp_path, "ema", *extra)]
    proc = subprocess.run(cmd, env=dict(_env(tmp_path), CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "ema"
    logged = json.loads((run_dir / "metrics.json").read_text())[-1]

    argv = ["--checkpoint", str(run_dir), "--weights", "ema", "--workers", "0", "-b", "11"]
    ema = validate(build_parser().parse_args(argv))["results"]["clean"]
    reset_accelerate()
    assert ema["count"] == logged["val_samples"] == 33
    assert ema["top1"] == logged["ema_top1"] and ema["top5"] == logged["ema_top5"]
    assert ema["loss"] == pytest.approx(logged["ema_val_loss"], rel=1e-6)

    with pytest.raises(ValueError, match=r"number of processes 1 \(the state: number of processes 2\)"):
        train(parse_args(_train_argv(tmp_path, "ema", *extra, "--resume", "auto", "--threads", "1")))
    reset_accelerate()


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    """Augmentation (random crop), drop-path and mixup all draw random numbers: the resumed run must still match."""
    env = _env(tmp_path)
    extra = "--epochs 2 --crop-padding 2 --hflip 0 --drop-path 0.1 --mixup 0.2 --save-state-every-n-steps 2"
    extra = [*extra.split(), *"--sched-on-updates --warmup-epochs 1 --val-num-samples 32".split()]
    train = [sys.executable, "-m", "timm_zerosnet.train"]

    reference = subprocess.run(
        train + _train_argv(tmp_path, "ref", *extra), env=env, capture_output=True, text=True, timeout=600
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "CPU heap kept" in reference.stdout  # the entry point keeps freed memory on CPU

    victim = subprocess.Popen(
        train + _train_argv(tmp_path, "killed", *extra),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoints = CheckpointManager(tmp_path / "killed")
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and victim.poll() is None:
            latest = checkpoints.latest()
            if latest is not None and not latest.name.endswith("-b000000"):  # a mid-epoch state (every 2 batches)
                victim.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        victim.kill()
        victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"the run was not killed mid-epoch: {victim.stderr.read()[-2000:]}"
    killed_at = checkpoints.latest().name
    assert not killed_at.endswith("-b000000")
    assert not (tmp_path / "killed" / "model.safetensors").exists()

    resumed = subprocess.run(
        train + _train_argv(tmp_path, "killed", *extra, "--resume", "auto"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stdout

    want = load_file(tmp_path / "ref" / "model.safetensors")
    got = load_file(tmp_path / "killed" / "model.safetensors")
    assert want.keys() == got.keys()
    different = [k for k in want if not torch.equal(want[k], got[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    print(f"killed after {killed_at}; resumed run equals the uninterrupted one on all {len(want)} tensors")
    ref_metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    got_metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    for a, b in zip(ref_metrics, got_metrics, strict=True):
        assert (a["val_correct1"], a["val_loss"], a["lr"]) == (b["val_correct1"], b["val_loss"], b["lr"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)


_CLOCK_PER_RANK = """
import datetime, os, sys
import timm_zerosnet.train as t

class Clock(datetime.datetime):  # each process a second apart, as a slow start makes them
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2026, 1, 1, 0, 0, int(os.environ.get("RANK", "0")))

t.datetime = Clock
sys.exit(t.main())
"""


def test_processes_without_experiment_share_one_run_directory(tmp_path):
    """The default run name comes from each process's clock: the main process's name must hold for all of them,
    or a launch splits into two run directories with half a training state in each."""
    script = tmp_path / "clock.py"
    script.write_text(_CLOCK_PER_RANK)
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no"
    launch += f" --dynamo_backend no --main_process_port {_free_port()} {script} --cpu"
    argv = _train_argv(tmp_path / "runs", "x", "--epochs", "1", "--val-num-samples", "32")
    at = argv.index("--experiment")
    argv = argv[:at] + argv[at + 2 :]  # no --experiment (and still one epoch: it trained 100 when cut off here)
    proc = subprocess.run(
        [sys.executable, *launch.split(), *argv],
        env=dict(_env(tmp_path), CUDA_VISIBLE_DEVICES=""),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name == "20260101-000000-zerosnet20_cifar"
    assert len(json.loads((run_dir / "metrics.json").read_text())) == 1
    state = CheckpointManager(run_dir).latest()
    assert sorted(p.name for p in state.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]


def test_a_launch_that_accelerate_would_run_as_single_processes_is_refused(tmp_path):
    """Two processes launched on a machine without GPUs and without --cpu: accelerate runs each alone, and both
    would train into one directory. Refused, saying to pass --cpu."""
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no"
    launch += f" --dynamo_backend no --main_process_port {_free_port()} -m timm_zerosnet.train"
    cmd = [sys.executable, *launch.split(), *_train_argv(tmp_path, "alone", "--epochs", "1")]
    proc = subprocess.run(
        cmd, env=dict(_env(tmp_path), CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    assert "2 processes were launched (WORLD_SIZE=2) but accelerate runs this one alone" in proc.stderr
    assert "pass --cpu" in proc.stderr
    assert not (tmp_path / "alone" / "model.safetensors").exists()


def test_ctrl_c_on_a_two_process_launch_records_where_the_run_stood(tmp_path):
    """Ctrl-C in a terminal signals the launcher and both workers: every process ends, the main process records the
    run as interrupted in run.json (not 'running') with the complete state to resume from, and says so once."""
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no"
    launch += f" --dynamo_backend no --main_process_port {_free_port()} -m timm_zerosnet.train --cpu"
    argv = _train_argv(tmp_path, "stopped", "--epochs", "100", "--save-state-every-n-steps", "2")
    proc = subprocess.Popen(
        [sys.executable, *launch.split(), *argv],
        env=dict(_env(tmp_path), CUDA_VISIBLE_DEVICES=""),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    checkpoints = CheckpointManager(tmp_path / "stopped")
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None and checkpoints.latest() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    info = json.loads((tmp_path / "stopped" / "run.json").read_text())
    assert info["status"] == "interrupted", info["status"]
    latest = checkpoints.latest()
    assert f"the latest complete state is {latest}" in info["error"] and "--resume auto" in info["error"]
    assert stderr.count("zerosnet-train: interrupted in epoch") == 1  # rank 0 only
    assert not (tmp_path / "stopped" / "model.safetensors").exists()
