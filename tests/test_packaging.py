"""Packaging facts that hold for an installed fastconv as much as for a source checkout.

* one version, in ``fastconv/_version.py``, equal to the installed distribution's;
* the license declared in the metadata;
* ``fastconv.info()`` says whether the Cython kernels have OpenMP;
* the Numba cache works when the package folder is read-only: it falls back to a user
  folder (``fastconv._numba._common``). The test copies the imported package (compiled
  modules included) to a temporary folder, takes its write permission away and runs a kernel
  in a subprocess. As root, whom file modes do not stop, the subprocess runs without the
  capabilities that bypass them (``setpriv``).

``tools/check_wheel.sh`` runs this module against the installed wheel, from outside the tree.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

import fastconv
from fastconv import _info

_DROP_CAPS = "-dac_override,-dac_read_search,-fowner"


def _installed_metadata():
    try:
        return importlib.metadata.metadata("fastconv")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastconv is not installed (no distribution metadata), only importable")


def test_version_has_one_source():
    from fastconv._version import __version__

    assert fastconv.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", __version__)
    assert _installed_metadata()["Version"] == __version__


def test_metadata_declares_the_license():
    meta = _installed_metadata()
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert "LICENSE" in (meta.get_all("License-File") or [])


def test_info_says_whether_openmp_is_compiled_in():
    assert _info.openmp_status({"openmp": True, "openmp_version": 201511}).startswith("yes")
    serial = _info.openmp_status({"openmp": False, "openmp_version": 0})
    assert serial.startswith("no - ") and "kernels run serially" in serial

    d = _info.info_dict()
    if "cython" in d["backends"]:
        assert d["openmp"] == _info.openmp_status(d["cython_build"])
    out = io.StringIO()
    fastconv.info(file=out)
    assert re.search(r"^openmp\s+: (yes|no - |n/a)", out.getvalue(), re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Numba's cache in a read-only installation
# --------------------------------------------------------------------------------------------
_RUN = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import fastconv
    from fastconv._numba import _common, pool
    here = os.path.realpath(os.path.dirname(fastconv.__file__))
    assert here.startswith(os.path.realpath(sys.argv[1])), here
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    y = fastconv.max_pool2d(x, 2, backend="numba")
    assert np.array_equal(y, fastconv.max_pool2d(x, 2, backend="numpy"))
    print(json.dumps({"dir": _common.CACHE_DIR, "source": _common.CACHE_SOURCE,
                      "env": os.environ.get("NUMBA_CACHE_DIR"),
                      "hits": sum(pool._max_pool2d.stats.cache_hits.values())}))
""")


@pytest.fixture
def read_only_install(tmp_path):
    """A copy of the imported package in ``site/`` without write permission, a fresh HOME,
    and how to run Python there as a user the permissions apply to."""
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    if "numba" not in fastconv.backends():
        pytest.skip("numba is not available")
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing")
        prefix = [setpriv, f"--inh-caps={_DROP_CAPS}", f"--bounding-set={_DROP_CAPS}"]
    site = tmp_path / "site"
    pkg = site / "fastconv"
    src = os.path.dirname(os.path.abspath(fastconv.__file__))
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    home = tmp_path / "home"
    home.mkdir()
    modes = {}
    for p in [pkg, *pkg.rglob("*")]:
        modes[p] = p.stat().st_mode
        p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_") and k not in ("XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), HOME=str(home), NUMBA_NUM_THREADS="2")

    def run(code=_RUN, **extra_env):
        proc = subprocess.run([*prefix, sys.executable, "-c", code, str(site)],
                              cwd=tmp_path, env={**env, **extra_env}, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    try:
        yield run, pkg, home
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def _cache_files(folder):
    return sorted(p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_numba_cache_falls_back_to_the_user_cache_when_read_only(read_only_install):
    run, pkg, home = read_only_install
    first = run()
    fallback = home / ".cache" / "fastconv" / "numba"
    assert first["source"] == "user"
    assert first["dir"] == first["env"] == str(fallback)
    assert _cache_files(fallback), "no cache files in the fallback folder"
    assert not _cache_files(pkg), "cache files written into the read-only package"
    # a new process loads the compiled kernel from there
    second = run()
    assert second["hits"] >= 1


def test_numba_cache_dir_set_by_the_user_wins(read_only_install, tmp_path):
    run, _, home = read_only_install
    mine = tmp_path / "my-cache"
    got = run(NUMBA_CACHE_DIR=str(mine))
    assert got["source"] == "NUMBA_CACHE_DIR" and got["dir"] == str(mine)
    assert _cache_files(mine)
    assert not (home / ".cache").exists()


def test_numba_cache_uses_a_temp_folder_when_home_is_read_only(read_only_install, tmp_path):
    run, _, home = read_only_install
    home.chmod(0o555)
    temp = tmp_path / "tmp"
    temp.mkdir()
    try:
        got = run(TMPDIR=str(temp))
    finally:
        home.chmod(0o755)
    assert got["source"] == "temp"
    assert got["dir"].startswith(str(temp) + os.sep)
    assert _cache_files(temp)


# --------------------------------------------------------------------------------------------
# The cache folder is private: a folder another user made is never used
# --------------------------------------------------------------------------------------------
_OTHER_UID = 54321  # a uid that owns nothing here: the "other local user"


class _Plant:
    """A pickle that, when loaded, creates the file ``marker``: stands for any code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _chown_tree(root, uid, mode):
    for p in [root, *root.rglob("*")]:
        os.chown(p, uid, uid)
        p.chmod(mode if p.is_dir() else 0o666)


def test_issue15_numba_cache_in_a_folder_another_user_made_is_not_loaded(
        read_only_install, tmp_path):
    """Another user creates ``<tmp>/fastconv-numba-<user>`` first, world-writeable, and
    plants Numba index files in it (Numba unpickles them before any check): the victim's
    process must not use that folder, so the planted code never runs."""
    import pickle

    run, _, home = read_only_install
    home.chmod(0o555)  # the user cache is out of reach: the temp folder is next in line
    legit, attack = tmp_path / "legit", tmp_path / "attack"
    for d in (legit, attack):
        d.mkdir()
        d.chmod(0o1777)  # like /tmp: shared, sticky
    marker = tmp_path / "planted-code-ran"
    try:
        # where Numba keeps its index files in such a folder (names depend on the sources)
        first = run(TMPDIR=str(legit))
        assert first["source"] == "temp"
        planted_dir = attack / os.path.basename(first["dir"])
        index_files = [p.relative_to(first["dir"]) for p in _cache_files(legit)
                       if p.suffix == ".nbi"]
        assert index_files
        for rel in index_files:
            target = planted_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pickle.dumps(_Plant(str(marker))))
        _chown_tree(planted_dir, _OTHER_UID, 0o777)

        got = run(TMPDIR=str(attack))
    finally:
        home.chmod(0o755)
    assert not marker.exists(), "the planted pickle was loaded: code ran as the victim"
    assert got["source"] == "process", got
    assert not got["dir"].startswith(str(planted_dir)), got
    # nothing of the victim's was written into the other user's folder
    assert all(p.stat().st_uid == _OTHER_UID for p in planted_dir.rglob("*"))


_CHOICE = textwrap.dedent("""
    import json, os, stat, sys
    os.umask(0)  # the most permissive umask: fastconv's folders must still be private
    from fastconv._numba import _common
    home = os.path.expanduser("~")
    made = [os.path.join(home, ".cache"), os.path.join(home, ".cache", "fastconv"),
            _common.CACHE_DIR]
    print(json.dumps({"source": _common.CACHE_SOURCE, "dir": _common.CACHE_DIR,
                      "refused": getattr(_common, "REFUSED", {}),
                      "modes": [stat.S_IMODE(os.stat(p).st_mode) if p.startswith(home)
                                else None for p in made]}))
""")


def test_issue15_cache_folders_are_made_private_under_any_umask(read_only_install):
    run, _, home = read_only_install
    got = run(_CHOICE)
    assert got["source"] == "user"
    assert got["modes"] == [0o700, 0o700, 0o700]


def test_issue15_user_cache_owned_by_another_user_is_refused(read_only_install, tmp_path):
    run, _, home = read_only_install
    theirs = home / ".cache" / "fastconv" / "numba"
    theirs.mkdir(parents=True)
    _chown_tree(home / ".cache", _OTHER_UID, 0o777)
    temp = tmp_path / "tmp"
    temp.mkdir()
    temp.chmod(0o1777)
    got = run(_CHOICE, TMPDIR=str(temp))
    assert got["source"] == "temp", got
    assert got["dir"].startswith(str(temp) + os.sep)
    assert "owned by uid" in got["refused"][str(theirs)]


def test_issue15_private_folder_rules(tmp_path):
    """The checks themselves: owner, mode, symlink, parent."""
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    from fastconv._numba import _common

    ok = tmp_path / "ok"
    ok.mkdir(mode=0o700)
    assert _common._private(str(ok)) is None
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    assert "writeable by group or others" in _common._private(str(loose))
    link = tmp_path / "link"
    link.symlink_to(ok)
    assert "not a folder" in _common._private(str(link))
    shared_parent = tmp_path / "shared"
    shared_parent.mkdir()
    shared_parent.chmod(0o777)  # world-writeable, not sticky: ours could be swapped out
    inner = shared_parent / "mine"
    inner.mkdir(mode=0o700)
    assert "parent" in _common._private(str(inner))
    shared_parent.chmod(0o1777)
    assert _common._private(str(inner)) is None
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, _OTHER_UID, _OTHER_UID)
        assert "owned by uid" in _common._private(str(theirs))


# --------------------------------------------------------------------------------------------
# The benchmark suite ships inside the package (issue 16)
# --------------------------------------------------------------------------------------------
SUITE_FILES = ("__init__.py", "cases.py", "conftest.py", "pytest.ini", "test_peers.py",
               "test_paired.py", "test_loaded.py", "test_training.py", "test_dense_sparse.py",
               "test_dask_scale.py")


def test_issue16_the_benchmark_suite_ships_in_the_package():
    import fastconv.bench

    folder = os.path.dirname(os.path.abspath(fastconv.bench.__file__))
    assert os.path.dirname(folder) == os.path.dirname(os.path.abspath(fastconv.__file__))
    missing = [f for f in SUITE_FILES if not os.path.isfile(os.path.join(folder, f))]
    assert not missing, f"{folder} lacks {missing}"
    # an installed (not editable) distribution lists the suite among its files
    files = importlib.metadata.files("fastconv") if _is_installed() else None
    listed = {str(f).replace(os.sep, "/") for f in files or ()}
    if "fastconv/__init__.py" in listed:
        assert not [f for f in SUITE_FILES if f"fastconv/bench/{f}" not in listed], listed


def _is_installed():
    try:
        importlib.metadata.distribution("fastconv")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_issue16_bench_finds_the_packaged_suite_from_any_folder(tmp_path, monkeypatch):
    from fastconv import cli

    import fastconv.bench

    packaged = os.path.dirname(os.path.abspath(fastconv.bench.__file__))
    # a folder that is not a checkout, holding a ./bench that looks like a suite: the
    # packaged suite still wins (the old finder took ./bench first)
    decoy = tmp_path / "bench"
    decoy.mkdir()
    for f in ("conftest.py", "test_peers.py"):
        (decoy / f).write_text("")
    monkeypatch.chdir(tmp_path)
    assert os.path.samefile(cli._find_suite(None), packaged)
    # --suite DIR still chooses the folder, and a folder without a suite is refused by name
    assert os.path.samefile(cli._find_suite("bench"), decoy)
    with pytest.raises(SystemExit, match="no benchmark suite in .*--suite 'nowhere'"):
        cli._find_suite("nowhere")


def test_issue16_packaged_suite_collects_from_an_unrelated_folder(tmp_path):
    """The command `fastconv bench --quick` runs collects the suite from an unrelated folder,
    with the suite's own pytest.ini as configuration and its folder as rootdir (the
    suite's modules import each other as the package fastconv.bench)."""
    from conftest import collect_bench_suite

    # (-v after the command's -q: the header and the collected tree)
    suite, out = collect_bench_suite(tmp_path, ["--collect-only", "-v"])
    assert f"rootdir: {suite}" in out and "configfile: pytest.ini" in out, out
    names = re.findall(r"<Function (test_\w+)\[([^\]]+)\]>", out)
    assert ("test_conv2d", "lenet1-auto") in names, out  # a quick case of fastconv's
    assert not any(case.startswith("resnet3x3") for _, case in names), out  # not quick
