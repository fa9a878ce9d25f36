"""Starting weights for srnet3d_ixi 3.x from a 1.x / 2.x checkpoint: its weights, residual head
zeroed, in the 3.x network (correction on top of B-spline instead of trilinear interpolation).

Every weight shape is the same in both networks (the fixed interpolation layers hold none), but
an old head learned a correction of TRILINEAR upsampling; zeroed, the new network starts as
exactly B-spline interpolation and keeps the old feature layers. Pass the output to
``training/srnet3d_ixi.py --init-weights``.

    python training/srnet3d_bspline_init.py weights/srnet3d_ixi/2.0.0/model.weights.h5 \
        runs/sr-s3/init.weights.h5
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

HEAD = "head_residual"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", help="a srnet3d_ixi 1.x / 2.x .weights.h5 file")
    parser.add_argument("out", help="where to write the 3.x starting weights (.weights.h5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import numpy as np

    import medzoo
    from medzoo.train.averaging import write_weights

    out = Path(args.out)
    if not out.name.endswith(".weights.h5"):
        raise SystemExit(f"{out}: the output name must end in .weights.h5 (Keras' weights file)")
    model = medzoo.build("srnet3d_ixi")
    model.load_weights(args.weights)
    for weight in model.get_layer(HEAD).weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_weights(model, out)
    logging.info("wrote %s: %s with %s zeroed (= B-spline at the start)", out, args.weights, HEAD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
