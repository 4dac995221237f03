"""The ``fastconv`` command: ``fastconv info``, ``fastconv study`` and ``fastconv bench``."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys


# The benchmark suite ships inside the package (fastconv/bench/), next to this module.
SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench")


def _find_suite(path=None):
    """The benchmark suite's folder: ``path`` if given, else the one installed with fastconv
    (``fastconv/bench``, wherever the package was imported from; never the current folder)."""
    suite = os.path.abspath(path if path else SUITE)
    if not os.path.isfile(os.path.join(suite, "test_peers.py")):
        where = f"--suite {path!r}" if path else "the installed package"
        raise SystemExit(f"fastconv bench: no benchmark suite in {suite} ({where}): it should "
                         "hold conftest.py and test_*.py, as fastconv/bench does")
    return suite


def _pytest_command(suite, json_path, args):
    """The pytest run of ``suite``, isolated from the folder it starts in and from any
    project around the suite: ``-P`` keeps the current folder off ``sys.path`` (so a source
    checkout there cannot shadow the installed package), the suite's own ``pytest.ini``,
    rootdir and conftest cut-off keep other pytest configuration and conftest.py files out,
    and no cache is written into the package."""
    if sys.version_info >= (3, 11):
        cmd = [sys.executable, "-P", "-m", "pytest"]
    else:  # no -P: drop the '' that -c puts first on sys.path instead
        cmd = [sys.executable, "-c",
               "import sys; sys.path.pop(0); import pytest; sys.exit(pytest.console_main())"]
    cmd += [suite, f"--rootdir={suite}", f"--confcutdir={suite}", "-p", "no:cacheprovider"]
    ini = os.path.join(suite, "pytest.ini")
    if os.path.isfile(ini):
        cmd += ["-c", ini]
    cmd += ["--benchmark-only", f"--benchmark-json={json_path}", "-q",
            "--benchmark-warmup=on", f"--benchmark-max-time={args.max_time}"]
    if args.quick:
        cmd += ["-m", "quick"]
    return cmd + args.pytest_args


def _glibc_rerun(suite, out, args, env):
    """The second pass: the torch rows that targets compare with, in a process started with
    glibc's malloc defaults, merged into ``bench.json`` as ``torch@glibc-malloc``. Returns
    pytest's exit code (0 also when there was nothing to rerun)."""
    import importlib.util

    from ._benchreport import malloc_env, merge_malloc_run

    if importlib.util.find_spec("torch") is None:
        print("fastconv bench: torch is not installed: no second pass with glibc's malloc "
              "defaults", flush=True)
        return 0
    json_path = os.path.abspath(os.path.join(out, "bench-glibc-malloc.json"))
    if os.path.exists(json_path):
        os.remove(json_path)
    cmd = _pytest_command(suite, json_path, args) + ["--torch-target-rows"]
    print("second pass, torch with glibc's malloc defaults (the MALLOC_* variables removed):",
          shlex.join(cmd), flush=True)
    rc = subprocess.call(cmd, env=malloc_env(env, heap_kept=False))
    if rc == 5:  # pytest: no test selected (the selection holds no torch row)
        return 0
    if rc != 0:
        print(f"fastconv bench: the second pass (glibc's malloc defaults) failed (pytest exit "
              f"{rc})", file=sys.stderr)
        return rc
    if os.path.exists(json_path):
        n = merge_malloc_run(os.path.join(out, "bench.json"), json_path)
        print(f"merged {n} rows timed with glibc's malloc defaults from {json_path}")
    return 0


def bench(args) -> int:
    """Run the suite with the heap kept (``_benchreport.HEAP_KEPT``, whatever the calling
    environment sets), then torch's target rows again with glibc's malloc defaults, and
    render the report."""
    suite = _find_suite(args.suite)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.abspath(os.path.join(args.out, "bench.json"))
    cmd = _pytest_command(suite, json_path, args)
    from ._benchreport import HEAP_KEPT, malloc_env

    print("running:", " ".join(f"{k}={v}" for k, v in HEAP_KEPT.items()), shlex.join(cmd),
          flush=True)
    # no .pyc files (pytest's rewritten test modules) written into site-packages
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    rc = subprocess.call(cmd, env=malloc_env(env, heap_kept=True))
    if rc != 0:
        print(f"fastconv bench: the suite failed (pytest exit {rc})", file=sys.stderr)
        return rc
    rc = _glibc_rerun(suite, args.out, args, env)
    if rc != 0:
        return rc
    from ._benchreport import render

    report = render(json_path, args.out, command=shlex.join(["fastconv"] + args.argv))
    print(f"wrote {report} and {json_path}")
    if args.readme:
        from ._benchreport import splice_readme

        with open(os.path.join(args.out, "readme.md")) as f:
            splice_readme(args.readme, f.read())
        print(f"updated the benchmark summary in {args.readme}")
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def study(args) -> int:
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"fastconv study needs the 'study' extra (pip install 'fastconv[study]'); "
              f"missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    from .study import StudyConfig, run
    if args.backend is not None:
        from . import backends

        if args.backend != "auto" and args.backend not in backends():
            print(f"fastconv study: backend {args.backend!r} is not available; "
                  f"available: {backends()}", file=sys.stderr)
            return 2
    if args.mnist is not None and not os.path.isdir(args.mnist):
        print(f"fastconv study: --mnist {args.mnist!r} is not a folder", file=sys.stderr)
        return 2
    from . import get_num_threads, set_num_threads

    cfg = StudyConfig(out=args.out, seed=args.seed, quick=args.quick, epochs=args.epochs,
                      batch_size=args.batch_size, backend=args.backend, mnist=args.mnist,
                      limit=args.limit, progress=not args.no_progress, seeds=args.seeds)
    before = get_num_threads()
    set_num_threads(args.threads)
    try:
        run(cfg)
    finally:
        set_num_threads(before)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, backends, threads, BLAS, build flags, "
                                       "import and first-call (compile) times")
    s = sub.add_parser(
        "study", help="train a dense net and CNNs on digits; report what convolution buys",
        description="Train a dense net, a CNN without pooling and a LeNet-style CNN (and, "
        "for invariance, LeNet with anti-aliased pooling and a CNN with a global-average-"
        "pooling head) on scikit-learn's digits (or MNIST), over several seeds, and report "
        "parameters and cost, sparse connection and weight sharing, equivariance, invariance "
        "to shifts, overfitting and data efficiency, and the same on digits at random "
        "positions of a larger canvas, as tables, results.json and PNG plots.")
    s.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    s.add_argument("--out", default="fastconv-study", help="output folder (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="data split, initialization and batches "
                   "(default: %(default)s)")
    s.add_argument("--backend", default=None, help="fastconv backend for the conv and pooling "
                   "layers (default: the current default, 'auto')")
    s.add_argument("--mnist", metavar="DIR", default=None,
                   help="use the four standard MNIST IDX files in DIR (gzipped or not) instead "
                   "of scikit-learn's digits")
    s.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs of the full training set (default: 20, 4 with --quick); "
                   "smaller training sets get the same number of steps")
    s.add_argument("--seeds", type=_positive_int, default=None,
                   help="repeat every experiment with N seeds (--seed, --seed + 1, ...: the "
                   "split, the initial weights and the batches); tables give the mean and sd "
                   "over them, verdicts are judged from their spread (default: 3, 2 with "
                   "--quick)")
    s.add_argument("--batch-size", type=_positive_int, default=32, help="(default: %(default)s)")
    s.add_argument("--threads", type=_positive_int, default=1,
                   help="threads for fastconv's kernels (default: %(default)s; batches of 32 "
                   "small images are too small to share, and on a busy machine a parallel "
                   "region waits for its slowest thread; the results do not depend on it)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--limit", type=_positive_int, default=None, help=argparse.SUPPRESS)
    b = sub.add_parser(
        "bench", help="run the benchmark suite and write the report and plots",
        description="Run the benchmark suite (fastconv/bench) with glibc's malloc keeping its "
        "heap (MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ set, whatever the "
        "environment says), then torch's rows that speed targets compare with again with "
        "glibc's defaults (merged as torch@glibc-malloc), and write bench.json, the report "
        "(with the machine's FMA and sgemm peak, measured by the run) and the plots.")
    b.add_argument("--quick", action="store_true", help="run the small subset only")
    b.add_argument("--out", default="fastconv-bench", help="output folder (default: %(default)s)")
    b.add_argument("--suite", default=None, metavar="DIR",
                   help="run the suite in DIR (default: the one installed with fastconv, "
                   "fastconv/bench)")
    b.add_argument("--max-time", default="0.5", help="pytest-benchmark max time per test (s)")
    b.add_argument("--readme", default=None, metavar="FILE",
                   help="also write the short ratio table between FILE's bench-summary markers")
    b.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command == "info":
        from . import info

        info(first_call=True)
        return 0
    if args.command == "study":
        return study(args)
    if args.command == "bench":
        return bench(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
