#!/usr/bin/env python3
"""Draws bench/results.csv (from pike-compare --csv) as an SVG bar chart:
throughput per message size (log scale) and 16-byte round-trip p50.
Standard library only."""
import csv
import math
import sys

src, dst = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(src)))
systems = []
for r in rows:
    if r["system"] not in systems:
        systems.append(r["system"])
value = {(r["system"], r["metric"]): float(r["value"]) for r in rows}
colors = ["#d6452b", "#555555", "#3a7bd5", "#2aa876", "#e0a100", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b"]
groups = [("thr16", "16 B"), ("thr256", "256 B"), ("thr65536", "64 KiB")]

W, H = 1000, 420
left, top, plot_h = 70, 40, 260
group_w = 170
bar_w = group_w / (len(systems) + 1)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{left}" y="20" font-size="14">Throughput, messages/s (log scale), one connection over loopback</text>']
lo, hi = 1e3, 1e8
def y(v):
    v = max(v, lo)
    return top + plot_h - plot_h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
for e in range(3, 9):
    yy = y(10 ** e)
    out.append(f'<line x1="{left}" x2="{left + group_w * len(groups)}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end">1e{e}</text>')
for g, (metric, label) in enumerate(groups):
    x0 = left + g * group_w
    for i, s in enumerate(systems):
        v = value.get((s, metric))
        if v is None:
            continue
        x = x0 + (i + 0.5) * bar_w
        out.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar_w * 0.9:.1f}" height="{top + plot_h - y(v):.1f}" fill="{colors[i % len(colors)]}"><title>{s} {label}: {v:.0f} msg/s</title></rect>')
    out.append(f'<text x="{x0 + group_w / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{label}</text>')
# Round-trip panel.
lx = left + group_w * len(groups) + 40
out.append(f'<text x="{lx}" y="20" font-size="14">Round trip p50, 16 B (µs)</text>')
# Only the systems measured for round trips (pike-copy is not).
p50 = [(s, value[(s, "p50")]) for s in systems if (s, "p50") in value]
finite = [v for _, v in p50 if v is not None and v < 5000]
scale = 160 / max(finite) if finite else 1
for i, (s, v) in enumerate(p50):
    yy = top + 10 + i * 32
    color = colors[systems.index(s) % len(colors)]
    out.append(f'<text x="{lx}" y="{yy + 14}">{s}</text>')
    width = min(v * scale, 170)
    out.append(f'<rect x="{lx + 80}" y="{yy}" width="{width:.1f}" height="20" fill="{color}"/>')
    label = f"{v:.0f}" + (" (off scale)" if v >= 5000 else "")
    out.append(f'<text x="{lx + 86 + width:.1f}" y="{yy + 14}">{label}</text>')
# Legend.
for i, s in enumerate(systems):
    x = left + i * 110
    out.append(f'<rect x="{x}" y="{H - 40}" width="12" height="12" fill="{colors[i % len(colors)]}"/>')
    out.append(f'<text x="{x + 18}" y="{H - 30}">{s}</text>')
out.append("</svg>")
open(dst, "w").write("\n".join(out))
