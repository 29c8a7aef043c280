#!/usr/bin/env python
"""Draw a registered dataset's images with their annotations (Detectron2's Visualizer), tiled
into one picture: a look at what a model is asked to find.

    tools/visualize_data.py --dataset clutter_instances_val --output clutter.png [--count 8]
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.visualizer import Visualizer

import slimdet  # noqa: F401  (registers the generated datasets)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a registered dataset name")
    parser.add_argument("--output", required=True, help="image file to write (.png, .jpg)")
    parser.add_argument("--count", type=int, default=8, help="images, from the first")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--scale", type=float, default=2.0)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> np.ndarray:
    args = parse_args(argv)
    records = DatasetCatalog.get(args.dataset)[: args.count]
    metadata = MetadataCatalog.get(args.dataset)
    panels = []
    for record in records:
        image = cv2.imread(record["file_name"])[:, :, ::-1]
        plain = cv2.resize(image, None, fx=args.scale, fy=args.scale,
                           interpolation=cv2.INTER_NEAREST)
        drawn = Visualizer(image, metadata, scale=args.scale).draw_dataset_dict(record)
        panels.append(np.concatenate([plain, drawn.get_image()], axis=1))
    while len(panels) % args.columns:
        panels.append(np.zeros_like(panels[0]))
    rows = [np.concatenate(panels[i: i + args.columns], axis=1)
            for i in range(0, len(panels), args.columns)]
    picture = np.concatenate(rows, axis=0)
    cv2.imwrite(args.output, picture[:, :, ::-1])
    print(f"Wrote {args.output}: {len(records)} images of {args.dataset}, each plain and "
          "annotated")
    return picture


if __name__ == "__main__":
    main()
