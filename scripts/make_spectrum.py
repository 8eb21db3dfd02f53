"""Fit the default MACO magnitude (`kerasviz.engine.params.power_law`) to photos, and write its constants to
kerasviz/resources/maco_spectrum.json.

The photos are the color ones bundled with scikit-image (in its `data` folder, read from disk, never
downloaded), each under a license that allows this use, as their `skimage.data` docstrings say:
- astronaut: NASA, "No known copyright restrictions, released into the public domain";
- chelsea: "No copyright restrictions. CC0 by the photographer (Stefan van der Walt)";
- coffee: "No copyright restrictions. CC0 by the photographer (Rachel Michetti)";
- rocket: SpaceX, released into the public domain.

The fit: `kv.spectrum` of the photos at 256 px (their mean Fourier magnitude in the space MACO draws from:
the logit of the pixels, colors decorrelated), then `log M_c(f) = log A_c - slope * log f` over 2/256 <= f <= 0.4
cycles per pixel with one slope for the three channels (least squares on their mean log magnitude) and each
channel's amplitude `A_c` (the mean residual, the largest 1); `dc` is each channel's mean (the DC term per
pixel) in units of the top channel's standard deviation, so `power_law` keeps the photos' ratio of mean to contrast.

Run: `python scripts/make_spectrum.py` (prints the fit; `--dry-run` does not write the file).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZE = 256
BAND = (2 / SIZE, 0.4)
OUT = os.path.join(os.path.dirname(__file__), "..", "kerasviz", "resources", "maco_spectrum.json")


def fit(magnitude: np.ndarray) -> dict:
    """The power law of a `(C, H, W)` magnitude: slope, per-channel amplitudes (largest 1) and DC."""
    c, h, w = magnitude.shape
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None] ** 2)
    band = (f >= BAND[0]) & (f <= BAND[1])
    logs = np.log(np.maximum(np.abs(magnitude[:, band]), 1e-12))
    slope, _ = np.polyfit(np.log(f[band]), logs.mean(axis=0), 1)
    amplitudes = np.exp((logs + slope * np.log(f[band])[None] * -1).mean(axis=1))
    residual = logs - (np.log(amplitudes)[:, None] + slope * np.log(f[band])[None])
    top = int(np.argmax(amplitudes))
    ac = magnitude[top].copy()
    ac[0, 0] = 0.0
    ac_std = np.sqrt(np.sum(ac**2)) / (h * w)  # Parseval: the pixels' standard deviation in the top channel
    return {"slope": float(-slope), "amplitudes": [float(a / amplitudes.max()) for a in amplitudes],
            "dc": [float(d) for d in magnitude[:, 0, 0] / (h * w) / ac_std],
            "rms_log_residual": float(np.sqrt(np.mean(residual**2)))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the fit, do not write the resource file")
    args = parser.parse_args(argv)
    import skimage.data

    import kerasviz as kv

    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    magnitude = kv.spectrum(photos, size=SIZE)
    constants = fit(magnitude)
    per_photo = {name: round(fit(kv.spectrum(p, size=SIZE))["slope"], 3) for name, p in zip(PHOTOS, photos,
                                                                                           strict=True)}
    constants.update(photos=list(PHOTOS), size=SIZE, band=list(BAND), per_photo_slope=per_photo)
    print(json.dumps(constants, indent=1))
    if not args.dry_run:
        with open(OUT, "w", encoding="utf-8") as f:
            json.dump(constants, f, indent=1)
            f.write("\n")
        print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
