"""benchmarks/gpu_session.sh, the one call a lent GPU gets: each call measures into a fresh work folder, and a failed
command shows in the exit status. Its stages are stood in for by `true` / `false` (PY), so nothing is measured."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def session(tmp_path, name, **env):
    out = tmp_path / name
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(out), "STAGES": "1", "DEVICE": "cpu", **env}
    done = subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    return done, out


def test_each_call_measures_into_a_fresh_work_folder_and_a_failure_is_its_exit_status(tmp_path):
    """A second call on the same machine found the first call's runs in the fixed /tmp/gpu_session_work (training
    was refused, results.tgz shipped the first call's files) and still exited 0."""
    work = []
    for name, py, rc in (("first", "true", 0), ("second", "false", 1)):
        done, out = session(tmp_path, name, PY=py)
        assert done.returncode == rc, done.stdout + done.stderr
        log = (out / "session.log").read_text()
        work.append(re.search(r"work folder (\S+)", log).group(1))
        assert (out / "results.tgz").is_file()
    assert work[0] != work[1] and all(Path(w).is_dir() and Path(w).parent == tmp_path for w in work)
    assert "0 command(s) failed" in session(tmp_path, "third", PY="true")[0].stdout
    assert re.search(
        r"1 command\(s\) failed\nfailed: false -c .*\(exit 1\)", (tmp_path / "second" / "session.log").read_text()
    )
    # a work folder given that holds files is refused before anything runs
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "device_check.json").write_text("{}")
    done, out = session(tmp_path, "fourth", PY="true", WORK=str(tmp_path / "used"))
    assert done.returncode == 2 and "is not empty: a call measures into a fresh folder" in done.stderr
    assert not (out / "session.log").exists()
