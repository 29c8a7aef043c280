#!/usr/bin/env python
"""Convert an ImageNet-pretrained ResNet into a slimdet backbone checkpoint (docs/pretrained.md).

    tools/convert_pretrained.py --source-format slimmable \\
        s_resnet50_0.25_0.5_0.75_1.0.pt pretrained/s_resnet50_0.25_0.5_0.75_1.0.pth
    tools/convert_pretrained.py --source-format torchvision \\
        resnet50-0676ba61.pth pretrained/torchvision_resnet50.pth

The output loads through MODEL.WEIGHTS (SlimmableCheckpointer).
"""
import argparse
import os
import sys

from slimdet.checkpoint import SOURCE_FORMATS, convert_pretrained_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-format", required=True, choices=SOURCE_FORMATS,
                        help="slimmable: official Slimmable Networks S-ResNet (.pt); "
                             "torchvision: torchvision.models.resnet* state dict")
    parser.add_argument("--widths", type=float, nargs="+", default=None,
                        help="MODEL.SLIMMABLE.WIDTHS you will train with: a slimmable file must "
                             "have exactly these; a torchvision file is checked to fit them")
    parser.add_argument("src", help="the ImageNet checkpoint")
    parser.add_argument("dst", help="where to write the slimdet checkpoint (.pth)")
    args = parser.parse_args()

    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    try:
        converted = convert_pretrained_file(args.src, args.dst, args.source_format, args.widths,
                                            progress=True)
    except ValueError as err:  # the file does not fit: say why, without a traceback
        sys.exit(f"error: {err}")
    print(converted.summary())
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()
