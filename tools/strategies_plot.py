#!/usr/bin/env python3
"""Plots test accuracy over time of the update-strategy runs (tools/strategies.sh)
as a hand-written SVG and prints the Markdown table of docs/benchmarks.md's
"Update strategies" section.

    python3 tools/strategies_plot.py OUT.svg LABEL=STATUS.json...

Each STATUS.json is `pandoctl -o json status JOB`: its history has, per
epoch, the seconds since the job started and the test accuracy.
"""
import json
import sys

TARGET = 0.85
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def load(arg):
    label, path = arg.rsplit("=", 1)
    status = json.load(open(path))
    points = [(h["seconds"], h["test_accuracy"]) for h in status.get("history", [])]
    return label, status, points


def time_to(points, target):
    for seconds, accuracy in points:
        if accuracy >= target:
            return seconds
    return None


def svg(runs, out):
    width, height = 640, 400
    left, right, top, bottom = 60, 170, 30, 50
    pw, ph = width - left - right, height - top - bottom
    tmax = max([p[0] for _, _, pts in runs for p in pts] + [1.0])
    amin = min([p[1] for _, _, pts in runs for p in pts] + [0.80])
    amin = max(0.0, int(amin * 20) / 20.0)  # down to a multiple of 0.05
    amax = 0.92

    def x(t):
        return left + pw * t / tmax

    def y(a):
        return top + ph * (1 - (min(a, amax) - amin) / (amax - amin))

    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'font-family="sans-serif" font-size="12">' % (width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="18" font-size="14">Fashion-MNIST MLP, 3 workers, one 3x straggler: '
        'test accuracy over time</text>' % left,
    ]
    steps = 5
    for i in range(steps + 1):  # grid and axis labels
        t = tmax * i / steps
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                     % (x(t), top, x(t), top + ph))
        parts.append('<text x="%.1f" y="%d" text-anchor="middle">%.0f</text>'
                     % (x(t), top + ph + 16, t))
    a = amin
    while a <= amax + 1e-9:
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                     % (left, y(a), left + pw, y(a)))
        parts.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>'
                     % (left - 6, y(a) + 4, a))
        a += 0.02
    parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" '
                 'stroke-dasharray="4,3"/>' % (left, y(TARGET), left + pw, y(TARGET)))
    parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
                 % (left, top, pw, ph))
    parts.append('<text x="%.1f" y="%d" text-anchor="middle">seconds since the job started'
                 '</text>' % (left + pw / 2, height - 10))
    parts.append('<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">'
                 'test accuracy</text>' % (top + ph / 2, top + ph / 2))
    for i, (label, _, pts) in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        if pts:
            path = " ".join("%.1f,%.1f" % (x(t), y(acc)) for t, acc in pts)
            parts.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>'
                         % (path, colour))
            for t, acc in pts:
                parts.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>'
                             % (x(t), y(acc), colour))
        ly = top + 10 + 20 * i
        parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                     % (left + pw + 12, ly, left + pw + 32, ly, colour))
        parts.append('<text x="%d" y="%d">%s</text>' % (left + pw + 38, ly + 4, label))
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = [load(arg) for arg in sys.argv[2:]]
    svg(runs, sys.argv[1])
    print("| strategy | time to test accuracy %.2f | final test accuracy | seconds per epoch |"
          % TARGET)
    print("|---|---|---|---|")
    for label, status, pts in runs:
        reach = time_to(pts, TARGET)
        final = pts[-1][1] if pts else 0.0
        per_epoch = pts[-1][0] / len(pts) if pts else 0.0
        print("| %s | %s | %.4f | %.1f |" % (
            label, "%.1f s" % reach if reach is not None else "not reached", final, per_epoch))
    print("\nplot: %s" % sys.argv[1])


if __name__ == "__main__":
    main()
