"""fastconv's benchmark suite (pytest-benchmark), shipped with the package.

``fastconv bench`` runs it and writes the report (:mod:`fastconv._benchreport`); it needs
the ``bench`` extra (``pip install "fastconv[bench]"``), and the peers it compares with that
are not installed (torch: the ``peers`` extra; Dask: the ``dask`` extra) skip. Arguments
after ``--`` go to pytest (``fastconv bench --quick -- -k lenet1``). The suite has its own
``pytest.ini`` (its marker and ``--strict-markers``), which pytest run on this folder takes as
configuration, so the pytest configuration of a project around it does not apply.
Importing this package imports nothing: the test modules import pytest and are only
collected by pytest.

``cases.py`` names the benchmark shapes once; the suite, the report and fastconv's own tests
read them from there.
"""
