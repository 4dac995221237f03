"""The benchmark report (``fastconv bench``) from a made-up pytest-benchmark JSON: the
ratios, the targets and whether each holds are computed, not copied."""

from __future__ import annotations

import json
from pathlib import Path

from fastconv import _benchreport as br


def _bench(group, impl, median, **extra):
    return {"group": group, "name": f"test[{impl}]",
            "stats": {"median": median, "iqr": median / 10},
            "extra_info": {"impl": impl, **extra}}


def _data():
    g = "conv2d-lenet1-float32"
    d = "conv2d-deep-float32"
    return {"datetime": "2026-11-29", "benchmarks": [
        _bench(g, "torch", 4e-4), _bench(g, "auto", 0.8e-4), _bench(g, "cython", 0.8e-4),
        _bench(g, "numba", 0.6e-4),                        # numba is best: auto is 1.33x it
        _bench(d, "torch", 8e-3), _bench(d, "auto", 11e-3), _bench(d, "cython", 11e-3),
        _bench(d, "cython-1t", 17e-3),                     # 1.55x: below 1.7
        _bench("conv2d-depthwise-float32", "cython", 0.5e-3),
        _bench("conv2d-depthwise-float32", "cython-1t", 0.6e-3),  # 1.2x: shown, no bound
        # the interleaved pair: auto / torch on resnet3x3 (its rows were not run)
        _bench("paired", "auto / torch", 9e-3, target_group="conv2d-resnet3x3-float32",
               a="auto", b="torch", ratio=0.8),
        # the pick paired with the other backend on deep (its rows say 1.0: numba not run)
        _bench("paired", "cython / numba", 9e-3, target_group=d, a="cython", b="numba",
               ratio=1.2),
        _bench("paired", "numba / cython", 9e-3, target_group=d, a="numba", b="cython",
               ratio=1 / 1.2),
    ]}


def test_targets_are_computed_from_the_medians():
    groups = br._rows(_data())
    t = {what: (value, holds) for what, value, _, holds, _ in br.targets(groups)}
    assert t["conv2d lenet1"] == (0.2, True)
    assert t["conv2d deep"][0] == 11e-3 / 8e-3 and t["conv2d deep"][1] is False
    pick = br.auto_backend()
    value, holds = t[f"conv2d-lenet1: auto's pick ({pick}) / best backend"]
    if pick == "cython":
        assert abs(value - 0.8 / 0.6) < 1e-12 and holds is False
    value, holds = t["conv2d deep: 1 -> 2 threads speed-up (cython-1t / cython)"]
    assert abs(value - 17 / 11) < 1e-12 and holds is False
    assert t["conv2d lenet2"] == (None, None)  # not run
    value, holds = t["conv2d depthwise: 1 -> 2 threads speed-up (cython-1t / cython)"]
    assert abs(value - 1.2) < 1e-12 and holds is None  # memory-bound: not a target
    # a paired ratio, when the run has one, is the measured value
    assert t["conv2d resnet3x3"] == (0.8, True)
    # the pick against the other backend, paired: the worse of 1 and its ratio to it
    value, holds = t[f"conv2d-deep: auto's pick ({pick}) / best backend"]
    if pick in ("cython", "numba"):
        assert (value, holds) == ((1.2, False) if pick == "cython" else (1.0, True))


def test_render_writes_the_targets_into_report_and_summary(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_data()))
    report = br.render(str(path), str(tmp_path / "out"), command="fastconv bench")
    text = Path(report).read_text()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary in text
    assert "| conv2d lenet1 | 0.20 | 0.20 | <= 0.3 | yes |" in summary
    assert "| conv2d deep | 1.38 | 1.38 | <= 0.8 | **no** |" in summary
    assert "| conv2d lenet2 | not run |  | <= 0.7 |  |" in summary
    assert "| conv2d resnet3x3 | 0.800 |  | <= 0.8 | yes |" in summary
    # a value that two decimals would round onto its bound gets three
    assert br._fmt_ratio(1.697, ">= 1.7") == "1.697" and br._fmt_ratio(1.66, ">= 1.7") == "1.66"
    assert "### paired" not in text  # the pairs feed the targets, not the peers' tables


def test_issue16_readme_table_is_short_and_names_machine_date_versions(tmp_path):
    """The README's table: at most 20 workloads (the report keeps them all), with the date
    of the run, the machine the run's JSON recorded (not the one rendering it) and the
    versions."""
    data = _data()
    for i in range(25):
        g = f"conv2d-extra{i:02d}-float32"
        data["benchmarks"] += [_bench(g, "torch", 1e-3), _bench(g, "auto", 0.5e-3)]
    # an interleaved auto / torch pair replaces the rows' medians in fastconv's column
    data["benchmarks"].append(_bench("paired", "auto / torch", 9e-3, a="auto", b="torch",
                                     target_group="conv2d-extra00-float32", ratio=0.7))
    data["machine_info"] = {"cpu": {"brand_raw": "AMD EPYC", "vendor_id_raw": "AuthenticAMD",
                                    "family": 25, "model": 17, "count": 2}}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    report = br.render(str(path), str(tmp_path / "out"), command="fastconv bench")
    report = Path(report).read_text()
    table = (tmp_path / "out" / "readme.md").read_text()
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) == br.README_ROWS == 20
    assert "more workloads are in the full report" in table
    assert "| conv2d-extra24 | 0.50 |" in report and "conv2d-extra24" not in table
    assert "| conv2d-deep | 1.38 |" in table  # fastconv's column is auto's
    assert "| conv2d-extra00 | 0.70 |" in table and "| conv2d-extra01 | 0.50 |" in table
    assert "| conv2d-extra00 | 0.50 |" in report  # the report's peers table: the medians
    assert "measured 2026-11-29 on AMD EPYC (Zen 4), 2 cores" in table
    info = br.machine_info()
    assert f"numpy {info['numpy']}" in table and f"fastconv {info['fastconv']}" in table
    assert "target" not in table  # the targets are the report's

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{br.START}\nold\n{br.END}\nrest\n")
    br.splice_readme(str(readme), table)
    assert readme.read_text() == f"intro\n{br.START}\n{table}{br.END}\nrest\n"


def test_issue16_run_machine_falls_back_to_the_rendering_machine():
    assert br.run_machine({}, {"cpu": "Some CPU", "cores": 4}) == "Some CPU, 4 cores"
    intel = {"machine_info": {"cpu": {"brand_raw": "Intel(R) Xeon(R)", "count": 2,
                                      "vendor_id_raw": "GenuineIntel", "family": 6}}}
    assert br.run_machine(intel) == "Intel(R) Xeon(R), 2 cores"


def test_issue16_readme_table_shows_autos_backend_where_auto_was_not_timed():
    g = "training_epoch-lenet-digits16"
    data = {"datetime": "2026-11-29", "benchmarks": [
        _bench(g, "torch", 1.0), _bench(g, "cython", 0.25), _bench(g, "numba", 0.5)]}
    groups = br._rows(data)
    table = br.readme_table(data, br.ratios(groups), br.machine_info())
    expected = {"cython": "0.25", "numba": "0.50"}.get(br.auto_backend())
    if expected:
        assert f"| {g} | {expected} | 0.50 |" in table


def test_issue15_targets_tiny_calls_under_load_and_the_dense_epoch():
    """The loaded tiny-call pairs (fastconv/bench/test_loaded.py) and the dense net's epoch
    against torch's are targets of the report: <= 1.1 and <= 1.0."""
    dense = "training_epoch-dense-digits16"
    data = {"datetime": "2026-12-04", "benchmarks": [
        _bench(dense, "cython", 3e-3), _bench(dense, "torch", 4e-3),
        _bench("paired", "auto-1t / auto", 1e-5, target_group="conv2d-tiny-float32-loaded",
               a="auto-1t", b="auto", ratio=1.04),
        _bench("paired", "auto-1t / auto", 1e-5,
               target_group="max_pool2d-2x2s2-tiny-float32-loaded", a="auto-1t", b="auto",
               ratio=1.3),
    ]}
    t = {what: (value, bound, holds) for what, value, bound, holds, _ in
         br.targets(br._rows(data))}
    assert t["training epoch, study's dense net"] == (0.75, "<= 1", True)
    assert t["tiny conv2d, one core busy: 1 thread / auto"] == (1.04, "<= 1.1", True)
    assert t["tiny max_pool2d, one core busy: 1 thread / auto"] == (1.3, "<= 1.1", False)


def test_peer_targets_are_judged_against_their_peer():
    # the SciPy-namespace/FFT/rank targets pair auto with the peer their entry names
    from fastconv.bench.targets import peer_targets

    rows = {g: (what, bound, peer) for what, g, bound, peer in peer_targets()}
    assert {"scipy", "cv2", "scipy.ndimage", "numpy.convolve", "torch"} <= {
        p for _, _, p in rows.values()}
    g = "median_filter-5x5-1024x1024-uint8-scipy"
    what, bound, peer = rows[g]
    assert (bound, peer) == (0.2, "scipy") and what.endswith("(auto / scipy)")
    data = {"datetime": "2026-12-05", "benchmarks": [
        _bench("paired", f"auto / {peer}", 1e-3, target_group=g, a="auto", b=peer,
               ratio=0.25)]}
    t = {w: (value, holds) for w, value, _, holds, _ in br.targets(br._rows(data))}
    assert t[what] == (0.25, False)
    # a pair with torch's name for the same group does not count for the scipy target
    data["benchmarks"][0]["extra_info"]["b"] = "torch"
    t = {w: (value, holds) for w, value, _, holds, _ in br.targets(br._rows(data))}
    assert t[what] == (None, None)


# --------------------------------------------------------------------------------------------
# issue 20: the machine's peak, measured by the bench, and the malloc settings
# --------------------------------------------------------------------------------------------
PEAK = {"isa": "x86-64-v3", "fma": {"float32": {"1": 100.0, "2": 200.0},
                                   "float64": {"1": 50.0, "2": 100.0}},
        "sgemm": {"1": 80.0, "2": 160.0}, "sgemm_n": 2048,
        "blas": ["openblas 0.3.31 (Haswell)"], "seconds": 3.0}


def test_issue20_report_gives_each_conv_rows_share_of_the_measured_peak(tmp_path):
    g = "conv2d-resnet3x3-float32"
    data = {"datetime": "2026-12-05", "machine_info": {"peak": PEAK, "bench_threads": 2},
            "benchmarks": [
                _bench(g, "auto", 0.01, gflop=1.2, threads=2),       # 120 GFLOP/s, 2 threads
                _bench(g, "cython-1t", 0.02, gflop=1.2),              # 60 on 1 (from its name)
                _bench(g, "torch", 0.015, gflop=1.2),                  # 80 on bench_threads
                _bench("conv2d-deep-float64", "cython", 0.1, gflop=2.0, threads=2),  # 20
                _bench("max_pool2d-2x2s2-pool_small-float32", "auto", 1e-3, gbyte=0.1),
                _bench("paired", "auto / torch", 9e-3, target_group=g, a="auto", b="torch",
                       ratio=0.8, gflop=1.2)]}
    groups = br._rows(data)
    rows = {(grp, impl): rest for grp, impl, *rest in br.peak_rows(data, groups)}
    assert set(rows) == {(g, "auto"), (g, "cython-1t"), (g, "torch"),
                         ("conv2d-deep-float64", "cython")}  # GB/s rows and pairs are not
    assert rows[g, "auto"] == [2, 120.0, 0.6, 0.75]
    assert rows[g, "cython-1t"] == [1, 60.0, 0.6, 0.75]
    assert rows[g, "torch"][:2] == [2, 80.0]
    n, rate, fma, gemm = rows["conv2d-deep-float64", "cython"]
    assert (n, rate, fma, gemm) == (2, 20.0, 0.2, None)  # float64 peak; sgemm is float32

    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    text = Path(br.render(str(path), str(tmp_path / "out"))).read_text()
    assert "## Achieved GFLOP/s against the machine's peak" in text
    assert "| conv2d-resnet3x3 | auto | 2 | 120.0 | 60% | 75% |" in text
    assert "| conv2d-deep-float64 | cython | 2 | 20.0 | 20% |  |" in text
    assert ("- peak, FMA loop (x86-64-v3 build), GFLOP/s: float32 100.0 on 1 thread, 200.0 "
            "on 2 threads; float64 50.0 on 1 thread, 100.0 on 2 threads") in text
    assert ("- peak, numpy float32 sgemm 2048x2048x2048 (openblas 0.3.31 (Haswell)), GFLOP/s:"
            " 80.0 on 1 thread, 160.0 on 2 threads") in text


def test_issue20_report_notes_a_peak_lowered_by_other_work(tmp_path):
    low = dict(PEAK, fma={"float32": {"1": 100.0, "2": 120.0}, "float64": {"1": 50.0}},
               measurements=[{}, {}])
    lines = br.peak_lines({"machine_info": {"peak": low}})
    assert "- the peaks are the best of 2 measurements, at the start and at the end of the " \
           "run" in lines
    assert [ln for ln in lines if ln.startswith("- note: the FMA peak on 2 threads is 1.20x")]
    assert not [ln for ln in br.peak_lines({"machine_info": {"peak": PEAK}})
                if ln.startswith("- note")]  # 200 on 2 threads: 2x


def test_issue20_best_of_keeps_each_highest_peak():
    from fastconv import _peak

    a = dict(PEAK, fma={"float32": {"1": 100.0, "2": 120.0}, "float64": {"1": 50.0, "2": 99.0}},
             sgemm={"1": 80.0, "2": 90.0}, seconds=3.0)
    b = dict(PEAK, fma={"float32": {"1": 98.0, "2": 201.0}, "float64": {"1": 51.0, "2": 90.0}},
             sgemm={"1": 79.0, "2": 158.0}, seconds=2.5)
    best = _peak.best_of(a, b)
    assert best["fma"] == {"float32": {"1": 100.0, "2": 201.0},
                           "float64": {"1": 51.0, "2": 99.0}}
    assert best["sgemm"] == {"1": 80.0, "2": 158.0} and best["seconds"] == 5.5
    assert best["measurements"] == [{"fma": a["fma"], "sgemm": a["sgemm"]},
                                    {"fma": b["fma"], "sgemm": b["sgemm"]}]
    assert best["isa"] == a["isa"] and best["blas"] == a["blas"]
    assert a["fma"]["float32"]["2"] == 120.0  # the inputs are left as they were
    import pytest

    with pytest.raises(ValueError, match="at least one measurement"):
        _peak.best_of()


def test_issue20_report_without_a_peak_says_so(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_data()))
    text = Path(br.render(str(path), str(tmp_path / "out"))).read_text()
    assert "- peak: not measured in this run" in text
    # the rows keep their GFLOP/s, without shares
    data = _data()
    data["benchmarks"] = [_bench("conv2d-lenet1-float32", "auto", 1e-3, gflop=0.5)]
    assert br.peak_rows(data, br._rows(data)) == [("conv2d-lenet1-float32", "auto", 2, 500.0,
                                                   None, None)]


def test_issue20_malloc_env_fixes_the_settings_whatever_the_environment_says():
    user = {"PATH": "/bin", "MALLOC_MMAP_THRESHOLD_": "4096", "MALLOC_ARENA_MAX": "2",
            "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.cpu.x86_ibt=on"}
    kept = br.malloc_env(user)
    assert kept == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.cpu.x86_ibt=on", **br.HEAP_KEPT}
    assert set(br.HEAP_KEPT) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    defaults = br.malloc_env(user, heap_kept=False)
    assert defaults == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.cpu.x86_ibt=on"}
    assert br.malloc_env({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}, False) == {}
    assert user["MALLOC_ARENA_MAX"] == "2"  # the caller's mapping is not touched

    rec = br.malloc_settings(kept)
    assert rec["vars"] == br.HEAP_KEPT and rec["tunables"] == []
    assert br.describe_malloc(rec).startswith(
        "heap kept (MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824)")
    assert br.describe_malloc(br.malloc_settings(defaults)).startswith("glibc's defaults")
    mixed = br.describe_malloc(br.malloc_settings({**user, "LD_PRELOAD": "libjemalloc.so"}))
    assert mixed.startswith("as set by the environment: MALLOC_ARENA_MAX=2 "
                            "MALLOC_MMAP_THRESHOLD_=4096 glibc.malloc.trim_threshold=1")
    assert "LD_PRELOAD=libjemalloc.so" in mixed
    assert br.describe_malloc(None) == "not recorded"


def _glibc_run():
    """The second pass's JSON: torch's rows and the auto / torch pairs, timed with glibc's
    malloc defaults."""
    g = "conv2d-lenet1-float32"
    return {"datetime": "2026-12-05T10:00", "machine_info": {"malloc": {
        "vars": {}, "tunables": [], "ld_preload": None, "libc": "glibc 2.36"}},
        "benchmarks": [
            dict(_bench(g, "torch", 0.8e-4 / 0.3),
                 fullname="test_peers.py::test_conv2d[lenet1-torch]"),
            _bench("conv2d-deep-float32", "torch", 12e-3),
            _bench("paired", "auto / torch", 9e-3, target_group="conv2d-resnet3x3-float32",
                   a="auto", b="torch", ratio=0.75),
            _bench(g, "auto", 1e-4),  # not a torch row: not merged
        ]}


def test_issue20_merge_adds_the_glibc_malloc_rows_once(tmp_path):
    main, other = tmp_path / "bench.json", tmp_path / "bench-glibc-malloc.json"
    main.write_text(json.dumps(dict(_data(), machine_info={"malloc": {"vars": br.HEAP_KEPT}})))
    other.write_text(json.dumps(_glibc_run()))
    assert br.merge_malloc_run(str(main), str(other)) == 3
    assert br.merge_malloc_run(str(main), str(other)) == 3  # again: replaced, not doubled
    data = json.loads(main.read_text())
    assert len(data["benchmarks"]) == len(_data()["benchmarks"]) + 3
    new = [b for b in data["benchmarks"] if b["extra_info"].get("malloc") == "glibc-defaults"]
    assert sorted(b["extra_info"]["impl"] for b in new) == [
        "auto / torch@glibc-malloc", "torch@glibc-malloc", "torch@glibc-malloc"]
    pair = [b for b in new if b["group"] == "paired"][0]["extra_info"]
    assert (pair["a"], pair["b"], pair["ratio"]) == ("auto", "torch@glibc-malloc", 0.75)
    row = [b for b in new if b["group"] == "conv2d-lenet1-float32"][0]
    assert row["fullname"] == "test_peers.py::test_conv2d[lenet1-torch]@glibc-malloc"
    assert data["machine_info"]["malloc"] == {"vars": br.HEAP_KEPT}  # the first run's
    assert data["machine_info"]["malloc_rerun"]["rows"] == 3
    assert data["machine_info"]["malloc_rerun"]["malloc"]["vars"] == {}


def test_issue20_targets_hold_against_the_faster_torch(tmp_path):
    main, other = tmp_path / "bench.json", tmp_path / "bench-glibc-malloc.json"
    main.write_text(json.dumps(_data()))
    other.write_text(json.dumps(_glibc_run()))
    br.merge_malloc_run(str(main), str(other))
    data = json.loads(main.read_text())
    groups = br._rows(data)
    t = {what: rest for what, *rest in br.targets_detail(groups)}
    # lenet1: auto 0.8e-4 over torch 4e-4 (heap kept) is 0.2; over torch@glibc-malloc's
    # 0.8e-4 / 0.3 it is 0.3: the faster torch row counts, and 0.3 still holds (<= 0.3)
    value, bound, holds, plain, each = t["conv2d lenet1"]
    assert abs(value - 0.3) < 1e-12 and holds is True and abs(plain - 0.3) < 1e-12
    assert each == {"torch": 0.2, "torch@glibc-malloc": value}
    # deep: torch@glibc-malloc (12 ms) is slower than torch (8 ms): torch's ratio counts
    value, bound, holds, plain, each = t["conv2d deep"]
    assert value == 11e-3 / 8e-3 and holds is False
    assert each == {"torch": value, "torch@glibc-malloc": 11e-3 / 12e-3}
    # resnet3x3: the pairs' ratios, 0.8 with the heap kept, 0.75 with glibc's defaults: the
    # larger counts
    value, bound, holds, plain, each = t["conv2d resnet3x3"]
    assert (value, holds, each) == (0.8, True, {"torch": 0.8, "torch@glibc-malloc": 0.75})
    # a target with no glibc row is judged as before; targets not against torch have none
    assert t["conv2d lenet2"][3:] == [None, {"torch": None, "torch@glibc-malloc": None}]
    assert t["conv2d deep: 1 -> 2 threads speed-up (cython-1t / cython)"][-1] is None
    assert [x[:5] for x in br.targets_detail(groups)] == br.targets(groups)

    text = Path(br.render(str(main), str(tmp_path / "out"))).read_text()
    assert "| conv2d lenet1 | 0.300 | 0.30 | <= 0.3 | yes | 0.20 / 0.30 |" in text
    assert "| conv2d resnet3x3 | 0.800 |  | <= 0.8 | yes | 0.80 / 0.75 |" in text
    assert "| conv2d lenet2 | not run |  | <= 0.7 |  | not run / not run |" in text
    assert "| torch@glibc-malloc | 266.7 us |" in text  # both torch rows are shown
    assert "- malloc, second process: glibc's defaults (no MALLOC_* variable); glibc 2.36; " \
           "its 3 rows are `torch@glibc-malloc`" in text
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "torch@glibc-malloc |" in summary.splitlines()[2]  # its column in the ratios


def test_issue20_bench_runs_heap_kept_then_torch_with_glibc_defaults(tmp_path, monkeypatch):
    """`fastconv bench`'s two passes: the suite with HEAP_KEPT whatever the caller's
    environment says, then the torch target rows (--torch-target-rows) with every MALLOC_*
    variable removed, merged before the report is rendered."""
    import importlib.util

    from fastconv import cli

    if importlib.util.find_spec("torch") is None:
        import pytest

        pytest.skip("the second pass runs only where torch is installed")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")
    calls = []

    def fake_call(cmd, env):
        calls.append((cmd, env))
        path = [a for a in cmd if a.startswith("--benchmark-json=")][0].split("=", 1)[1]
        run = _glibc_run() if "--torch-target-rows" in cmd else _data()
        Path(path).write_text(json.dumps(run))
        return 0

    monkeypatch.setattr(cli.subprocess, "call", fake_call)
    out = tmp_path / "out"
    assert cli.main(["bench", "--quick", "--out", str(out), "--", "-k", "lenet1"]) == 0
    (cmd1, env1), (cmd2, env2) = calls
    assert {k: v for k, v in env1.items() if k.startswith("MALLOC_")} == br.HEAP_KEPT
    assert not [k for k in env2 if k.startswith("MALLOC_")]
    assert "--torch-target-rows" not in cmd1 and cmd2[-1] == "--torch-target-rows"
    assert [a.replace("bench-glibc-malloc.json", "bench.json") for a in cmd2[:-1]] == cmd1
    assert "quick" in cmd2 and cmd2[cmd2.index("quick") - 1] == "-m" and "lenet1" in cmd2
    text = (out / "report.md").read_text()
    assert "| conv2d lenet1 | 0.300 | 0.30 | <= 0.3 | yes | 0.20 / 0.30 |" in text


def test_issue20_torch_target_rows_select_the_targets_torch_rows():
    from fastconv.bench.conftest import torch_target_item

    assert torch_target_item("test_conv2d", {"shape": "lenet1", "impl": "torch"})
    assert torch_target_item("test_conv2d_backward", {"impl": "torch"})
    assert torch_target_item("test_pool2d", {"impl": "torch", "op": "max_pool2d"})
    assert torch_target_item("test_training_epoch", {"arch": "dense", "impl": "torch"})
    assert torch_target_item("test_paired_ratio", {"group": "g", "a": "auto", "b": "torch"})
    assert not torch_target_item("test_conv2d", {"impl": "torch-1t"})
    assert not torch_target_item("test_conv2d", {"impl": "auto"})
    assert not torch_target_item("test_paired_ratio", {"a": "cython-1t", "b": "cython"})
    # every study model's epoch has a target against torch (issue 21)
    assert torch_target_item("test_training_epoch_translated", {"impl": "torch"})
    assert torch_target_item("test_training_epoch_other_models", {"arch": "gap",
                                                                  "impl": "torch"})
    assert not torch_target_item("test_training_epoch_translated", {"impl": "torch-1t"})
    assert not torch_target_item("test_training_something_else", {"impl": "torch"})


def test_issue20_suite_collects_only_torch_target_rows_with_the_option(tmp_path):
    """The suite's own collection with --torch-target-rows (and --quick's marker)."""
    import re

    import pytest

    pytest.importorskip("pytest_benchmark")
    from conftest import collect_bench_suite

    _, out = collect_bench_suite(tmp_path, ["--collect-only", "-v", "--torch-target-rows"])
    names = re.findall(r"<Function (test_\w+)\[([^\]]+)\]>", out)
    assert ("test_conv2d", "lenet1-torch") in names, out
    assert ("test_paired_ratio", "conv2d-lenet1-float32-auto/torch") in names, out
    assert ("test_training_epoch", "lenet-torch") in names, out
    for fn, case in names:
        assert "-torch" in case.replace("/", "-").split("-torch-1t")[0] + "-", (fn, case)
        assert "torch-1t" not in case and "translated" not in fn, (fn, case)


# the FMA microbenchmark and sgemm (fastconv._peak): arguments and return types, not speed
def test_issue20_fma_peak_checks_its_arguments_first():
    import pytest

    from fastconv import _peak

    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int32"):
        _peak.fma_peak("int32")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        _peak.fma_peak("no-such-type")
    with pytest.raises(TypeError, match="threads must be an int, got bool"):
        _peak.fma_peak("float32", True)
    with pytest.raises(TypeError, match="threads must be an int, got float"):
        _peak.fma_peak("float32", 2.0)
    with pytest.raises(ValueError, match=r"threads must be in \[1, 1024\], got 0"):
        _peak.fma_peak("float32", 0)
    with pytest.raises(ValueError, match="iterations must be in"):
        _peak.fma_peak("float32", 1, iterations=0)
    with pytest.raises(ValueError, match="repeats must be in"):
        _peak.fma_peak("float32", 1, repeats=0)
    with pytest.raises(ValueError, match="isa must be one of"):
        _peak.fma_peak("float32", 1, isa="avx1024")
    with pytest.raises(TypeError, match="isa must be a str or None"):
        _peak.fma_peak("float32", 1, isa=3)
    with pytest.raises(ValueError, match="n must be in"):
        _peak.sgemm_peak(1, n=0)
    with pytest.raises(TypeError, match="threads must be an int"):
        _peak.sgemm_peak("2")
    with pytest.raises(TypeError, match="threads must be a sequence of ints"):
        _peak.measure(2)
    with pytest.raises(ValueError, match="at least one thread count"):
        _peak.measure(())


def test_issue20_fma_peak_returns_gflops_for_every_build_and_dtype():
    import numpy as np

    from fastconv import _cy_peak, _peak

    isas = _peak.fma_isas()
    assert isas[0] == _peak.fma_isa() and isas[-1] in ("x86-64", "generic")
    assert set(isas) <= set(_cy_peak.LEVELS.values())
    for isa in isas:
        for dtype in ("float32", np.float64, np.dtype("float32")):
            for threads in (1, 2):
                g = _peak.fma_peak(dtype, threads, iterations=2000, repeats=2, isa=isa)
                assert type(g) is float and 0 < g < float("inf")
    # the chains' sum is what their recurrence gives: each lane converges to c / (1 - m)
    seconds, ran, total = _cy_peak.run(False, 2, 20000, _cy_peak.level())
    lanes = _cy_peak.lanes(_cy_peak.level(), False)
    assert seconds > 0 and 1 <= ran <= 2
    assert abs(total - 2 * _cy_peak.CHAINS * lanes) < 1e-3 * total
    g = _peak.sgemm_peak(1, n=64, repeats=1)
    assert type(g) is float and g > 0
    assert _peak.blas_kernels() and all(isinstance(b, str) for b in _peak.blas_kernels())


def test_issue20_measure_gives_the_peak_the_suite_stores():
    from fastconv import _peak

    # small runs: the structure, not the speed
    p = _peak.measure([2, 1, 2], repeats=1, iterations=1000, sgemm_n=64)
    assert set(p) == {"isa", "fma", "sgemm", "sgemm_n", "blas", "seconds"}
    assert p["isa"] == _peak.fma_isa() and p["sgemm_n"] == 64
    assert set(p["fma"]) == {"float32", "float64"}
    for d in list(p["fma"].values()) + [p["sgemm"]]:
        assert set(d) == {"1", "2"} and all(type(v) is float and v > 0 for v in d.values())
    json.dumps(p)  # stored as is in the run's JSON
