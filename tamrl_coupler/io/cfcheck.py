"""Run the CF checker (`cfchecks`, from the cfchecker package) offline.

cfchecks downloads the CF standard-name, area-type and region tables at every run; without network it fails.
The package ships the subset of those tables its files use (``sample_data/cf-*-subset.xml``, entries copied from
CF standard name table v93); the full standard-name table is used instead when compliance-checker is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TABLES = Path(__file__).resolve().parents[1] / "sample_data"


def standard_name_table() -> Path:
    try:
        import compliance_checker

        full = Path(compliance_checker.__file__).parent / "data" / "cf-standard-name-table.xml"
        if full.exists():
            return full
    except ImportError:
        pass
    return TABLES / "cf-standard-name-table-subset.xml"


def cfchecks(path: str | Path, timeout: float = 120) -> str:
    """cfchecks' report for ``path`` (look for ``ERRORS detected: 0``)."""
    exe = Path(sys.executable).parent / "cfchecks"
    cmd = str(exe) if exe.exists() else shutil.which("cfchecks")
    if cmd is None:
        raise FileNotFoundError("cfchecks is not installed (pip install cfchecker)")
    res = subprocess.run([cmd, "-s", str(standard_name_table()), "-a", str(TABLES / "cf-area-type-table-subset.xml"),
                          "-r", str(TABLES / "cf-region-names-subset.xml"), str(path)],
                         capture_output=True, text=True, timeout=timeout)
    return res.stdout + res.stderr
