"""The site scores printed in docs/component.md are what the shipped checkpoint gives now (made by a script)."""

from __future__ import annotations

import importlib.util

from conftest import REPO


def test_docs_site_scores_are_current(shared, capsys):
    fluxval = shared("data/fluxval/fluxval_monthly.nc")
    spec = importlib.util.spec_from_file_location("site_scores_docs", REPO / "scripts" / "site_scores_docs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rc = script.main(["--check", "--shared", str(fluxval.parents[2])])
    assert rc == 0, capsys.readouterr().err + " (regenerate: python scripts/site_scores_docs.py)"
