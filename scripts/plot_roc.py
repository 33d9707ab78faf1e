#!/usr/bin/env python3
"""Draws ROC curves written by `facetrain eval --roc-dir` (CSV: threshold,fpr,tpr) into one PNG.

usage: plot_roc.py ROC.csv... --out roc.png [--log-far]

FAR (false positive rate) on the x axis — logarithmic from 1e-6 with --log-far — TAR (true
positive rate) on the y axis, one coloured curve per file, labelled with the file's name.
Uses Pillow only.
"""
import argparse
import csv
import math
import os
import sys

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def read(path):
    fpr, tpr = [], []
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        if rows.fieldnames != ["threshold", "fpr", "tpr"]:
            sys.exit("%s: header %s, expected threshold,fpr,tpr" % (path, rows.fieldnames))
        for row in rows:
            fpr.append(float(row["fpr"]))
            tpr.append(float(row["tpr"]))
    return fpr, tpr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--log-far", action="store_true")
    args = parser.parse_args()

    w, h, margin = 640, 520, 60
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = margin, 20, w - 20, h - margin
    lo = -6.0

    def sx(f):
        if args.log_far:
            f = (math.log10(max(f, 10 ** lo)) - lo) / -lo
        return x0 + f * (x1 - x0)

    def sy(t):
        return y1 - t * (y1 - y0)

    draw.rectangle([x0, y0, x1, y1], outline="black")
    ticks = [10 ** -k for k in range(6, -1, -1)] if args.log_far else [i / 5 for i in range(6)]
    for t in ticks:
        draw.line([sx(t), y1, sx(t), y1 + 5], fill="black")
        draw.text((sx(t) - 12, y1 + 8), ("1e%d" % round(math.log10(t))) if args.log_far
                  else "%.1f" % t, fill="black")
    for i in range(6):
        draw.line([x0 - 5, sy(i / 5), x0, sy(i / 5)], fill="black")
        draw.text((x0 - 30, sy(i / 5) - 6), "%.1f" % (i / 5), fill="black")
    draw.text(((x0 + x1) / 2 - 50, h - 25), "FAR (false positive rate)", fill="black")
    draw.text((5, y0 - 15), "TAR", fill="black")
    if not args.log_far:
        draw.line([sx(0), sy(0), sx(1), sy(1)], fill=(200, 200, 200))
    for i, path in enumerate(args.csv):
        fpr, tpr = read(path)
        colour = COLOURS[i % len(COLOURS)]
        points = [(sx(f), sy(t)) for f, t in zip(fpr, tpr)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        name = os.path.basename(path).replace(".roc.csv", "")
        draw.text((x1 - 150, y1 - 20 - 15 * (len(args.csv) - i)), name, fill=colour)
    img.save(args.out)
    print("%d curve(s) -> %s" % (len(args.csv), args.out))


if __name__ == "__main__":
    main()
