"""cpu_heap.keep_heap: freed memory stays in the process (no page faults again next step), and an allocator chosen
through the environment is respected. Each case runs in its own interpreter: the setting is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from timm_zerosnet.cpu_heap import ALLOCATOR_ENV

# allocate and free a 64 MiB tensor (above glibc's largest dynamic mmap threshold, 32 MiB) six times, as training
# steps free and re-allocate their activations, and count the page faults of the last three rounds (the kept heap
# settles within the first three)
PROBE = """
import json, resource, sys, torch
note = None
if sys.argv[1] == "keep":
    from timm_zerosnet.cpu_heap import keep_heap
    note = keep_heap()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(6):
    f0 = faults()
    x = torch.ones(16 * 1024 * 1024)
    del x
    counts.append(faults() - f0)
print(json.dumps(dict(note=note, faults=counts[3:])))
"""


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    res = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_kept_heap_does_not_fault_the_same_memory_again():
    kept = _probe("keep")
    if not sys.platform.startswith("linux"):  # no glibc: keep_heap must say that it changed nothing
        assert kept["note"].startswith("CPU allocator left as it is"), kept
        return
    default = _probe("default")
    # 64 MiB are 16,384 pages of 4 KiB: glibc maps and unmaps the block every time, so every round faults it again
    assert min(default["faults"]) > 10_000, default
    assert kept["note"].startswith("CPU heap kept"), kept
    assert max(kept["faults"]) < 1_000, kept


def test_an_allocator_chosen_in_the_environment_is_left_alone():
    res = _probe("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert res["note"] == "CPU allocator left as configured by MALLOC_TRIM_THRESHOLD_"
    assert min(res["faults"]) > 10_000, res  # glibc still maps the 64 MiB block afresh


class _FakeLibc:
    """A C library whose mallopt accepts or refuses each option, and records the calls."""

    def __init__(self, refuse: set[int]):
        self.calls, self.refuse = [], refuse

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return 0 if option in self.refuse else 1


def test_both_settings_or_neither(monkeypatch):
    """A kept heap that still maps large blocks would re-fault exactly the largest tensors: where glibc refuses the
    trim threshold, the mmap limit set just before is put back to glibc's default (and nothing changes at all where
    it refuses the first). In this process, with a fake C library: no real setting is touched."""
    from timm_zerosnet import cpu_heap

    for name in ALLOCATOR_ENV:
        monkeypatch.delenv(name, raising=False)
    mmap_max, trim, int_max = -4, -1, 2**31 - 1  # glibc's malloc.h
    for refuse, calls, note in (
        (set(), [(mmap_max, 0), (trim, int_max)], "CPU heap kept"),
        ({trim}, [(mmap_max, 0), (trim, int_max), (mmap_max, 65536)], "glibc refused M_TRIM_THRESHOLD"),
        ({mmap_max}, [(mmap_max, 0)], "glibc refused M_MMAP_MAX"),
    ):
        libc = _FakeLibc(refuse)
        monkeypatch.setattr(cpu_heap.ctypes, "CDLL", lambda name, libc=libc: libc)
        assert note in cpu_heap.keep_heap()
        assert libc.calls == calls
