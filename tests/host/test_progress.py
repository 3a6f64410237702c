"""The offline driver's progress output."""

from __future__ import annotations

import pytest


# --- progress output -----------------------------------------------------------------------------------------------
def test_progress_lines_when_not_a_terminal_and_bar_on_one():
    import io

    from tamrl_coupler.host.progress import LineProgress, make_progress

    log = io.StringIO()  # a log file / CI pipe: not a terminal
    p = make_progress(280, "coupling steps", "auto", stream=log)
    assert isinstance(p, LineProgress)
    for _ in range(280):
        p.update(1)
    p.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in log.getvalue()
    assert lines[0].startswith("coupling steps: 28/280 steps (10 %)") and lines[-1].startswith(
        "coupling steps: 280/280 steps (100 %)")
    stopped = io.StringIO()  # a run stopped part-way reports where it got to when closed
    p = make_progress(100, "coupling steps", "lines", stream=stopped)
    for _ in range(25):
        p.update(1)
    p.close()
    assert [ln.split(" steps (")[0] for ln in stopped.getvalue().splitlines()] == [
        "coupling steps: 10/100", "coupling steps: 20/100", "coupling steps: 25/100"]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = make_progress(5, "coupling steps", "auto", stream=Terminal())
    assert type(bar).__name__ == "tqdm"
    bar.close()
    assert make_progress(5, mode="none") is None
    with pytest.raises(ValueError, match="progress mode 'fancy'"):
        make_progress(5, mode="fancy")
