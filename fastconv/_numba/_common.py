"""What every Numba kernel module shares: the decorator, the cache location and the thread
hand-off.

Cache location. ``cache=True`` makes Numba write the compiled kernels next to the sources, in
``fastconv/_numba/__pycache__``. An installed package is often read-only there (a system or
shared site-packages, a container image); then the cache goes to a user folder instead, in
this order:

1. ``NUMBA_CACHE_DIR``, when it is set (Numba's own variable; it wins);
2. ``fastconv/_numba/__pycache__``, when it is writeable;
3. ``$XDG_CACHE_HOME/fastconv/numba`` (``~/.cache/fastconv/numba``; on macOS
   ``~/Library/Caches/fastconv/numba``, on Windows ``%LOCALAPPDATA%\\fastconv\\Cache\\numba``);
4. ``<tempdir>/fastconv-numba-<user>``, when the home folder is not writeable either.

For 3 and 4 this module sets ``NUMBA_CACHE_DIR`` in ``os.environ``, which Numba reads when
it decides where a function's cache lives (at decoration time); it must therefore run before
any kernel is decorated. The variable then applies to the whole process and its children (Numba
keeps one subfolder per source folder, so nothing collides). ``fastconv.info()`` shows the
choice (``numba_cache``).
"""

import getpass
import os
import sys
import tempfile


def _writeable(path):
    """True when files can be created in ``path`` (made if missing): Numba's own test."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _user_cache_dir():
    """The per-user cache folder for fastconv's Numba kernels (platformdirs' convention)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        return os.path.join(base, "fastconv", "Cache", "numba")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/fastconv/numba")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "fastconv", "numba")


def _temp_cache_dir():
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry: any key will do
        user = str(os.getpid())
    return os.path.join(tempfile.gettempdir(), f"fastconv-numba-{user}")


def _choose_cache_dir():
    """Pick the cache folder and set ``NUMBA_CACHE_DIR`` for a fallback; returns
    ``(path, source)`` with source ``"NUMBA_CACHE_DIR"``, ``"package"``, ``"user"`` or
    ``"temp"``, or ``(None, "none")`` when nothing is writeable (Numba then raises on the
    first cached kernel, as it would without this module)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return given, "NUMBA_CACHE_DIR"
    in_tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    if _writeable(in_tree):
        return in_tree, "package"
    for path, source in ((_user_cache_dir(), "user"), (_temp_cache_dir(), "temp")):
        if _writeable(path):
            os.environ["NUMBA_CACHE_DIR"] = path
            return path, source
    return None, "none"


CACHE_DIR, CACHE_SOURCE = _choose_cache_dir()

import numba  # after NUMBA_CACHE_DIR is settled

if CACHE_SOURCE in ("user", "temp") and numba.config.CACHE_DIR != CACHE_DIR:
    # numba was imported before us (by the caller, or by the kernel module importing this
    # one): its config was read from the environment then, so read it again.
    numba.core.config.reload_config()

# nopython, parallel over prange, cached on disk, GIL released. No fastmath anywhere: it
# assumes no NaN/inf, and max-pool must propagate NaN.
jit = numba.njit(parallel=True, cache=True, nogil=True)


def use_threads(nthreads):
    """Give the calling thread's next parallel region ``nthreads`` threads (Numba's cap)."""
    numba.set_num_threads(max(1, min(int(nthreads), numba.config.NUMBA_NUM_THREADS)))
