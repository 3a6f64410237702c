"""Numbers the docs state, checked against the code that produces them (a doc that drifts from the code fails here).

* docs/component.md: how many coupling steps evaluate the ensemble on the demo (280 3-hourly steps from 2015-01-01):
  every one for the shipped daily checkpoint, and per ``model.update_interval`` for the monthly one, from the
  component's own clock and evaluation schedule;
* docs/model.md: the US-AR1 FLUXNET2015 file's scores with either shipped checkpoint, and whether the docs call the
  tower in-sample, from ``tamrl-coupler evaluate`` and the checkpoint's own training list.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO, shared_path

from tamrl_coupler.component.clock import Clock
from tamrl_coupler.component.schedule import EvaluationSchedule

DEMO_STEPS, DEMO_DT = 280, 10800  # configs/run/demo.yaml: 2015-01-01 to 2015-02-05, 3-hourly


def evaluations(period: str, interval: int, steps: int = DEMO_STEPS, dt: int = DEMO_DT) -> int:
    """Steps of the demo run on which the component evaluates the ensemble (its clock and schedule)."""
    clock, schedule = Clock("2015-01-01", period), EvaluationSchedule(interval)
    have, count = False, 0
    for k in range(steps):
        info = clock.step(k * dt, dt)
        if schedule.due(info, have):
            count += 1
            have = not info.ends_period
        elif info.ends_period:
            have = False
    return count


def test_demo_config_is_what_the_counts_assume():
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    assert cfg["coupling_step"] == DEMO_DT and cfg["model"]["checkpoint"] == "daily"
    span = (__import__("numpy").datetime64(cfg["end"]) - __import__("numpy").datetime64(cfg["start"]))
    assert int(span.astype("timedelta64[s]").astype(int)) == DEMO_STEPS * DEMO_DT


def test_component_md_evaluation_counts():
    text = (REPO / "docs" / "component.md").read_text()
    assert evaluations("daily", 86400) == DEMO_STEPS
    assert f"evaluates\non {DEMO_STEPS} of its {DEMO_STEPS} steps" in text or \
        f"on {DEMO_STEPS} of its {DEMO_STEPS} steps" in text.replace("\n", " ")
    rows = dict(re.findall(r"^\| (\d+)[^|]*\| (\d+) \|", text, flags=re.M))
    assert rows, "the update_interval table is missing from docs/component.md"
    for interval, stated in rows.items():
        assert int(stated) == evaluations("monthly", int(interval)), interval
    month = evaluations("monthly", 86400, steps=31 * 8)
    assert f"a monthly checkpoint {month} times in a 31-day month instead of {31 * 8} times" in text.replace("\n", " ")


def _evaluate(tmp_path, checkpoint: str | None) -> dict:
    from tamrl_coupler.cli import main

    data = shared_path("data/fluxnet/FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv")
    out = tmp_path / f"{checkpoint}.json"
    argv = ["evaluate", "--data", str(data), "--lat", "US-AR1=36.43", "--json", str(out), "--quiet"]
    assert main(argv + (["--checkpoint", checkpoint] if checkpoint else [])) == 0
    return json.loads(out.read_text())


def test_model_md_us_ar1_numbers_and_sample(tmp_path):
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.model.checkpoint import resolve_checkpoint
    from tamrl_coupler.training.insample import training_sites

    text = " ".join((REPO / "docs" / "model.md").read_text().split())
    paragraph = text[text.index("**FLUXNET2015 file.**"):][:1500]
    daily, monthly = _evaluate(tmp_path, None), _evaluate(tmp_path, "monthly")
    assert "US-AR1" in training_sites(load_checkpoint(resolve_checkpoint("daily")).meta)
    assert daily["sites"]["in_sample"] == ["US-AR1"] and "IN-SAMPLE" in paragraph and "never saw" not in paragraph
    gpp_d, gpp_m = daily["all"]["gpp"], monthly["all"]["gpp"]
    assert f"GPP RMSE {gpp_d['rmse']:.2f}, bias {gpp_d['bias']:+.2f}" in paragraph, (gpp_d, paragraph)
    assert f"GPP RMSE {gpp_m['rmse']:.2f}, bias {gpp_m['bias']:+.2f}" in paragraph, (gpp_m, paragraph)
    import netCDF4

    with netCDF4.Dataset(shared_path("data/fluxval/fluxval_monthly.nc")) as ds:
        assert "US-AR1" in [str(s) for s in ds["site"][:]]  # the monthly model's training sites: not unseen either


@pytest.mark.parametrize("period,interval,expected", [("monthly", 10800, 280), ("daily", 10800, 280)])
def test_steps_of_the_interval_or_longer_evaluate_every_step(period, interval, expected):
    assert evaluations(period, interval) == expected
