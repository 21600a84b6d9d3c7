#!/usr/bin/env python3
"""Instance predictions of a perfect detector, for upper bounds of the
detection-based foreground: every ground-truth instance (instanceIds id >=
1000 of a thing class) of a Cityscapes-layout split written in
cityscapesScripts' instance format (OUT/STEM.txt listing OUT/STEM_K.png masks,
labelID, confidence 1), as `segda eval --instances/--fuse-out` read it.

    python3 tools/oracle_instances.py GT_DIR OUT   # GT_DIR: ROOT/gtFine/val
Needs numpy and Pillow."""
import os
import sys

import numpy as np
from PIL import Image

THINGS = {24, 25, 26, 27, 28, 31, 32, 33}


def main(gt_dir, out):
    os.makedirs(out, exist_ok=True)
    n = 0
    for root, _, files in os.walk(gt_dir):
        for f in sorted(files):
            if not f.endswith("_gtFine_instanceIds.png"):
                continue
            stem = f[: -len("_gtFine_instanceIds.png")]
            ids = np.array(Image.open(os.path.join(root, f)))
            with open(os.path.join(out, stem + ".txt"), "w") as txt:
                for k, v in enumerate(int(v) for v in np.unique(ids) if v >= 1000 and v // 1000 in THINGS):
                    name = "%s_%d.png" % (stem, k)
                    Image.fromarray(((ids == v) * 255).astype(np.uint8)).save(os.path.join(out, name))
                    txt.write("%s %d 1.0\n" % (name, v // 1000))
                    n += 1
    print("%d instances written to %s" % (n, out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
