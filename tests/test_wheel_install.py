"""The built wheel, installed into a fresh virtual environment, runs ``curate init`` and the demo from a folder
that is not a clone: the manifests, the Grafana dashboard, the bundled photos and the curator checkpoint are
package data.

The fresh environment borrows the test environment's installed dependencies through a path file (not its
``.pth`` files, so not this clone's editable install): only the project itself comes from the wheel, and a
download of torch and Ray is not part of the test.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys

from tests.conftest import REPO


def _sh(*cmd: str, cwd=None, timeout: int = 300) -> str:
    done = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_in_a_fresh_venv_runs_init_and_the_demo(tmp_path):
    lock = {"PIP_CONSTRAINT": str(REPO / "requirements.lock")}
    source = tmp_path / "source"  # a clean copy: setuptools' build/ in the clone may hold files deleted since
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "build", "out", "*.egg-info", "__pycache__", ".pytest_cache", "bench", "docs", "tests"
        ),
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
            "-w",
            str(wheels),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **lock},
        timeout=300,
    )
    [wheel] = wheels.glob("layered_curation-*.whl")
    fresh = tmp_path / "fresh"
    _sh(sys.executable, "-m", "venv", "--without-pip", str(fresh))
    python = fresh / "bin" / "python"
    _sh(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel))
    fresh_site = _sh(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    borrowed = [p for p in site.getsitepackages() if p.startswith(sys.prefix)]
    (fresh / fresh_site.split(str(fresh) + "/")[1] / "borrowed-deps.pth").write_text("\n".join(borrowed) + "\n")

    user = tmp_path / "user"  # a folder of the user's: no clone here
    user.mkdir()
    where = _sh(str(python), "-c", "import curation; print(curation.__file__)", cwd=user)
    assert where.startswith(str(fresh)), where  # the wheel's copy, not this clone's
    curate = str(fresh / "bin" / "curate")
    _sh(curate, "init", "demo", cwd=user)
    assert (user / "demo" / "manifests" / "grafana" / "curation.json").is_file()
    config = user / "demo" / "manifests" / "demo.yaml"  # the demo as shipped, with 3 of its 48 rendered scenes
    config.write_text(config.read_text().replace("count: 48", "count: 3"))
    out = _sh(curate, "run", str(config), "--out", "demo/out", cwd=user, timeout=600)
    assert "accepted per source:" in out and "desoba " in out  # the bundled real photos were found
    _sh(curate, "verify", "demo/out", cwd=user)
    stats = json.loads((user / "demo" / "out" / "stats.json").read_text())
    assert stats["ingested"] > 0 and stats["accepted"] > 0
    assert (user / "demo" / "out" / "report.html").is_file()
