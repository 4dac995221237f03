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
        _bench(g, "torch", 2e-4), _bench(g, "auto", 0.8e-4), _bench(g, "cython", 0.8e-4),
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
    assert t["conv2d lenet1"] == (0.4, True)
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
    assert "| conv2d lenet1 | 0.40 | 0.40 | <= 0.5 | yes |" in summary
    assert "| conv2d deep | 1.38 | 1.38 | <= 1.25 | **no** |" in summary
    assert "| conv2d lenet2 | not run |  | <= 1 |  |" in summary
    assert "| conv2d resnet3x3 | 0.80 |  | <= 1.25 | yes |" in summary
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
