"""The CI summary (.ci/test_summary.py) reads pytest's JUnit report faithfully."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ordertower.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / ".ci" / "test_summary.py"


def _module():
    spec = importlib.util.spec_from_file_location("test_summary", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_real_pytest_report_is_summarised(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_bad():\n    assert 1 == 2\n"
        "@pytest.mark.skip(reason='no')\ndef test_skipped():\n    pass\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('setup')\n"
        "def test_error(broken):\n    pass\n"
    )
    report = tmp_path / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            f"--junitxml={report}",
            str(tmp_path / "test_sample.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    summary = _module().summarise(str(report), wall=12.5, top=2)
    assert summary["tests"] == 4
    assert summary["outcomes"] == {"passed": 1, "failed": 1, "skipped": 1, "error": 1}
    assert summary["wall_seconds"] == 12.5 and summary["pytest_seconds"] >= 0
    assert len(summary["slowest"]) == 2
    assert all(s["test"].startswith("test_sample::") for s in summary["slowest"])
    assert list(summary["modules"]) == ["test_sample"]


def test_a_measured_command_reports_its_own_peak_memory_and_its_errors():
    """make bench-day times the weekly models in processes of their own: the peak memory is that
    process's (one that holds 300 MB reports at least that), and a failure says why."""
    from pipelines.bench import measured_command

    hold = (
        "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1)"
    )
    big = measured_command([sys.executable, "-c", hold])
    small = measured_command([sys.executable, "-c", "import time; time.sleep(1)"])
    assert big["peak_gb"] >= 0.29 > small["peak_gb"]
    assert big["seconds"] >= 0
    with pytest.raises(RuntimeError, match="exited 3: .*no such asset"):
        measured_command(
            [sys.executable, "-c", "import sys; sys.stderr.write('no such asset'); sys.exit(3)"]
        )
