"""Makes the small copies of the product's pictures that docs/pictures.md shows (docs/img/*.png).

Each picture is made by the product's own code from a real run: the demo (Python driver, 35 days) for the NEE map,
the inversion prior of that run (configs/run/prior_demo.yaml's prior section) for the prior map, and the 160 FluxVal
sites (configs/run/sites.yaml, needs the shared data) for the site pictures (the seasonal-cycle copy is the first
of the product's pages: 24 sites per picture), and `evaluate` on one daily tower file (US-AR1, a training tower of the
daily checkpoint: marked in-sample) for the one-site pictures. Copies are stored as palette PNGs (tens of kB).

    python scripts/docs_images.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"


def shrink(src: Path, dst: Path, width: int = 900, colours: int = 96) -> Path:
    """A palette copy of ``src`` at most ``width`` pixels wide."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
    print(f"{dst}: {dst.stat().st_size // 1024} kB")
    return dst


def main(argv: list[str] | None = None) -> int:
    import yaml

    from tamrl_coupler.cli import main as cli
    from tamrl_coupler.communicator import SerialComm
    from tamrl_coupler.host.offline import run_offline
    from tamrl_coupler.physics.carbon import SignConvention
    from tamrl_coupler.products.maps import nee_map
    from tamrl_coupler.products.prior import write_prior_and_map
    from tamrl_coupler.products.scoring import matched
    from tamrl_coupler.products.siteplots import igbp_error, scatter, seasonal_cycles
    from tamrl_coupler.settings.run import load_run_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("TAMRL_SHARED", REPO.parent / "shared")),
                        help="the project's shared data folder (default: $TAMRL_SHARED, else ../shared)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo = load_run_config(REPO / "configs" / "run" / "demo.yaml")
        demo.output.map = False
        flux = run_offline(demo, tmp / "demo", comm=SerialComm(), progress=False).flux_file
        shrink(nee_map(flux, tmp / "nee_map.png"), IMG / "nee_map.png")
        prior = load_run_config(REPO / "configs" / "run" / "prior_demo.yaml").output.prior
        _, png = write_prior_and_map(flux, prior, tmp / "prior")
        shrink(png, IMG / "prior_map.png")

        fluxval = args.shared / "data" / "fluxval" / "fluxval_monthly.nc"
        raw = yaml.safe_load((REPO / "configs" / "run" / "sites.yaml").read_text())
        raw["forcing"]["files"] = [str(fluxval)]
        raw["output"]["score"] = None
        sites_flux = run_offline(load_run_config(raw), tmp / "sites", comm=SerialComm(), progress=False).flux_file
        names, igbp, months, obs, sim = matched(sites_flux, fluxval)
        title = "Coupled TAM-RL at the FluxVal sites"
        fluxes = ["gpp", "reco", "nee"]
        shrink(scatter(tmp / "s.png", obs, sim, fluxes, SignConvention.UPTAKE_POSITIVE, title),
               IMG / "sites_scatter.png")
        shrink(igbp_error(tmp / "e.png", igbp, obs, sim, fluxes, title), IMG / "sites_igbp_error.png")
        pages = seasonal_cycles(tmp / "c.png", names, igbp, months, obs, sim, SignConvention.UPTAKE_POSITIVE, title)
        shrink(pages[0], IMG / "sites_seasonal_cycle.png")

        tower = args.shared / "data" / "fluxnet" / "FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv"
        assert cli(["evaluate", "--data", str(tower), "--lat", "US-AR1=36.43", "--json", str(tmp / "one.json"),
                    "--quiet"]) == 0
        for kind in ("scatter", "seasonal_cycle"):
            shrink(tmp / f"one_{kind}.png", IMG / f"one_site_{kind}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
