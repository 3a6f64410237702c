"""Writes the in-sample FluxVal site scores of the shipped checkpoint into docs/component.md, from a real run.

The numbers in the docs are made here, never typed: the script runs ``configs/run/sites.yaml`` (the 160 FluxVal
towers as a point-set host, one coupling step per month) with the checkpoint shipped in the package, scores it
against the observed FLUXNET2015 fluxes, and rewrites the block between the markers in docs/component.md. With
``--check`` it writes nothing and exits 1 when the block differs (the test suite runs that), so a new checkpoint or
a change in the coupled run cannot leave stale numbers behind.

    python scripts/site_scores_docs.py [--shared ../shared] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "component.md"
BEGIN = "<!-- site-scores:begin (written by scripts/site_scores_docs.py: do not edit by hand) -->"
END = "<!-- site-scores:end -->"


def site_scores_block(shared: Path) -> str:
    """The markdown block: pooled in-sample scores of the shipped checkpoint over the 160 sites."""
    import yaml
    from mpi4py import MPI

    from tamrl_coupler.host.offline import run_offline
    from tamrl_coupler.model import default_checkpoint_path
    from tamrl_coupler.products.scoring import pooled_scores
    from tamrl_coupler.settings.run import load_run_config

    fluxval = shared / "data" / "fluxval" / "fluxval_monthly.nc"
    raw = yaml.safe_load((REPO / "configs" / "run" / "sites.yaml").read_text())
    raw["forcing"]["files"] = [str(fluxval)]
    raw["output"]["score"] = None
    with tempfile.TemporaryDirectory() as tmp:
        result = run_offline(load_run_config(raw), Path(tmp), comm=MPI.COMM_SELF, progress=False)
        scores = pooled_scores(result.flux_file, fluxval)
    checkpoint = default_checkpoint_path()
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    names = {"gpp": "GPP", "reco": "Reco", "nee": "NEE"}
    lines = [BEGIN,
             f"In-sample scores of the shipped checkpoint (`{checkpoint.name}`, sha256 `{digest}`…, trained on all "
             "160 sites) from `tamrl-coupler run configs/run/sites.yaml`, pooled over every site-month with an "
             "observation, gC m⁻² d⁻¹, NEE = GPP − Reco:", "",
             "| flux | site-months | RMSE | bias | R² |", "|---|---|---|---|---|"]
    lines += [f"| {names[f]} | {m['n']} | {m['rmse']:.3f} | {m['bias']:+.3f} | {m['r2']:.3f} |"
              for f, m in scores.items()]
    lines += ["", "Held-out skill is the model's grouped cross-validation (`docs/model.md`).", END]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with its marked block replaced by ``block``; an error when the markers are not there once."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"{DOC}: expected one '{BEGIN}' ... '{END}' block")
    head, rest = text.split(BEGIN)
    return head + block + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("TAMRL_SHARED", REPO.parent / "shared")),
                        help="the project's shared data folder (default: $TAMRL_SHARED, else ../shared)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the docs are stale")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = replace_block(text, site_scores_block(args.shared))
    if args.check:
        if new != text:
            print(f"{DOC}: the site scores are stale; run python scripts/site_scores_docs.py", file=sys.stderr)
            return 1
        print(f"{DOC}: site scores up to date")
        return 0
    DOC.write_text(new)
    print(f"{DOC}: site scores written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
