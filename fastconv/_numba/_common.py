"""What every Numba kernel module shares: the decorator, the cache location, the thread
hand-off and flush-to-zero.

Flush-to-zero (:func:`fastconv.set_flush_denormal`). Every ``prange`` body starts with
``old = ftz_enter(ftz)`` and ends with ``ftz_exit(old)``; ``ftz`` is the kernel's last
argument, the flag read by its Python wrapper (:func:`flush_denormal`). When it is on,
:func:`ftz_enter` saves the thread's MXCSR and sets FTZ and DAZ, and :func:`ftz_exit`
writes the saved value back: the modes last for one work item, in the thread that runs it,
and never reach the caller's thread or other users of the OpenMP pool. When it is off both
are one branch. The register is read and written by two LLVM intrinsics
(``llvm.x86.sse.stmxcsr`` / ``ldmxcsr``); elsewhere than x86-64 nothing is emitted.

Cache location. ``cache=True`` makes Numba write the compiled kernels next to the sources, in
``fastconv/_numba/__pycache__``. An installed package is often read-only there (a system or
shared site-packages, a container image); then the cache goes to a user folder instead, in
this order:

1. ``NUMBA_CACHE_DIR``, when it is set (Numba's own variable; it wins, and is used as given);
2. ``fastconv/_numba/__pycache__``, when it is writeable and private (below);
3. ``$XDG_CACHE_HOME/fastconv/numba`` (``~/.cache/fastconv/numba``; on macOS
   ``~/Library/Caches/fastconv/numba``, on Windows ``%LOCALAPPDATA%\\fastconv\\Cache\\numba``);
4. ``<tempdir>/fastconv-numba-<user>``, when the home folder is not writeable either;
5. a fresh folder from ``tempfile.mkdtemp`` for this process alone, removed at exit, when
   none of the above is both writeable and private;
6. no cache (``CACHE_SOURCE == "none"``) when not even that can be made: Numba then compiles
   in every process.

Private means: a real folder (not a symlink), owned by the current user, not writeable by
group or others, inside a parent that others cannot rename it out of (owned by the user or
root, and not writeable by others unless sticky, as ``/tmp`` is). Numba unpickles its index
files before any check of theirs, so whoever can write the cache folder can run code in every
process that loads it: a folder another local user created first (``/tmp`` is shared) is never
used. The folders fastconv creates get mode ``0o700`` whatever the umask.

For 3-5 this module sets ``NUMBA_CACHE_DIR`` in ``os.environ``, which Numba reads when it
decides where a function's cache lives (at decoration time); it must therefore run before any
kernel is decorated. The variable then applies to the whole process and its children (Numba
keeps one subfolder per source folder, so nothing collides). ``fastconv.info()`` shows the
choice (``numba_cache``) and, where a folder was refused, why (``REFUSED``).
"""

import atexit
import getpass
import os
import shutil
import stat
import sys
import tempfile

from .. import _threads


def _private(path):
    """None if ``path`` is a folder only the current user can write, else why not."""
    if sys.platform == "win32":  # pragma: no cover - POSIX modes do not apply
        return None
    try:
        st = os.lstat(path)
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder (a symlink or a file)"
    if st.st_uid != uid:
        return f"owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writeable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    if parent.st_uid not in (uid, 0) or (
            parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            and not parent.st_mode & stat.S_ISVTX):
        return "its parent folder lets others replace it"
    return None


def _makedirs_private(path):
    """Create ``path`` and its missing parents with mode 0o700 (umask notwithstanding)."""
    path = os.path.abspath(path)
    missing = []
    head = path
    while not os.path.lexists(head):
        missing.append(head)
        head = os.path.dirname(head)
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:  # made meanwhile, by us or by someone else: checked below
            continue
        os.chmod(p, 0o700)  # mkdir's mode is masked by the umask


def _usable(path):
    """None if ``path`` can be created (mode 0o700), is private and takes files, else why
    not."""
    try:
        _makedirs_private(path)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    why = _private(path)
    if why is not None:
        return why
    try:
        tempfile.TemporaryFile(dir=path).close()  # Numba's own test of writeability
    except OSError as exc:
        return f"not writeable ({type(exc).__name__}: {exc})"
    return None


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


def _process_cache_dir():
    """A fresh private folder for this process's cache, removed when it exits."""
    path = tempfile.mkdtemp(prefix="fastconv-numba-")  # mode 0o700, a new name
    pid = os.getpid()
    # only the process that made it removes it (a forked child may still be using it)
    atexit.register(lambda: os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))
    return path


REFUSED = {}  # {folder: why it was not used}, for fastconv.info()


def _choose_cache_dir():
    """Pick the cache folder and set ``NUMBA_CACHE_DIR`` for a fallback; returns
    ``(path, source)`` with source ``"NUMBA_CACHE_DIR"``, ``"package"``, ``"user"``,
    ``"temp"`` or ``"process"``, or ``(None, "none")`` when nothing private can be made (the
    kernels are then decorated without a disk cache: :data:`CACHE` is False)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return given, "NUMBA_CACHE_DIR"
    in_tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    candidates = ((in_tree, "package"), (_user_cache_dir(), "user"),
                  (_temp_cache_dir(), "temp"))
    for path, source in candidates:
        why = _usable(path)
        if why is None:
            if source != "package":
                os.environ["NUMBA_CACHE_DIR"] = path
            return path, source
        REFUSED[path] = why
    try:
        path = _process_cache_dir()
    except OSError as exc:
        REFUSED["mkdtemp"] = f"{type(exc).__name__}: {exc}"
        return None, "none"
    why = _private(path)  # a new 0o700 folder, but in a temp dir others could rename it out of
    if why is not None:
        REFUSED[path] = why
        return None, "none"
    os.environ["NUMBA_CACHE_DIR"] = path
    return path, "process"


CACHE_DIR, CACHE_SOURCE = _choose_cache_dir()
CACHE = CACHE_SOURCE != "none"  # the ``cache=`` every kernel decorator passes to Numba

import numba  # after NUMBA_CACHE_DIR is settled
import numpy as np

if CACHE_SOURCE in ("user", "temp", "process") and numba.config.CACHE_DIR != CACHE_DIR:
    # numba was imported before us (by the caller, or by the kernel module importing this
    # one): its config was read from the environment then, so read it again.
    numba.core.config.reload_config()

# nopython, parallel over prange, cached on disk, GIL released. No fastmath anywhere: it
# assumes no NaN/inf, and max-pool must propagate NaN.
jit = numba.njit(parallel=True, cache=CACHE, nogil=True)
# the same for helpers called from a prange body (no parallel loop of their own)
serial = numba.njit(cache=CACHE, nogil=True)


def use_threads(nthreads):
    """Give the calling thread's next parallel region ``nthreads`` threads (Numba's cap)."""
    numba.set_num_threads(max(1, min(int(nthreads), numba.config.NUMBA_NUM_THREADS)))


# --------------------------------------------------------------------------------------------
# flush-to-zero
# --------------------------------------------------------------------------------------------
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic, register_jitable  # noqa: E402

_X86 = _threads.flush_denormal_supported()
_FTZ_DAZ = 0x8040  # MXCSR bits: flush to zero (15), denormals are zero (6)
_KEEP = 0xFFFFFFFF  # ftz_enter changed nothing (MXCSR's high 16 bits are reserved, always 0)


def _mxcsr_call(builder, name, slot):
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def _getcsr(typingctx):
    """The thread's MXCSR (0 elsewhere than x86-64)."""
    def codegen(context, builder, sig, args):
        slot = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(32), 0))
        if _X86:
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)
    return types.uint32(), codegen


@intrinsic
def _setcsr(typingctx, csr):
    """Write the thread's MXCSR (nothing elsewhere than x86-64)."""
    if csr != types.uint32:
        return None

    def codegen(context, builder, sig, args):
        if _X86:
            slot = cgutils.alloca_once_value(builder, args[0])
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.void(types.uint32), codegen


@register_jitable
def ftz_enter(on):
    """Set FTZ and DAZ in this thread when ``on``; returns what :func:`ftz_exit` restores."""
    if not on:
        return np.uint32(_KEEP)
    old = _getcsr()
    if old & np.uint32(_FTZ_DAZ) == np.uint32(_FTZ_DAZ):
        return np.uint32(_KEEP)
    _setcsr(np.uint32(old | np.uint32(_FTZ_DAZ)))
    return old


@register_jitable
def ftz_exit(old):
    """Undo :func:`ftz_enter`: write back the MXCSR it saved (if it changed it)."""
    if old != np.uint32(_KEEP):
        _setcsr(old)


@numba.njit(cache=CACHE, nogil=True)
def mxcsr():
    """The calling thread's MXCSR, read by compiled code (a test hook)."""
    return _getcsr()


def flush_denormal():
    """The flag a kernel call passes as ``ftz`` (:func:`fastconv.set_flush_denormal`)."""
    return _threads.get_flush_denormal()
