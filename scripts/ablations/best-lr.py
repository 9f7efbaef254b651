#!/usr/bin/env python3
"""A sweep over mixers, widths and learning rates, reported as Zoology reports MQAR: for each mixer
and width, the learning rate whose mean accuracy over the seeds is highest, that accuracy (mean and
sample standard deviation) and its validation loss; a Markdown table on stdout, and with --plot
the best accuracy against width, a line per mixer (gnuplot).

  scripts/ablations/best-lr.py SWEEP_DIR [--rows KEY] [--columns KEY] [--lr KEY]
                               [--metric val_acc|val_loss] [--plot FILE.png]

Reads SWEEP_DIR/summary.csv (written by `hyla sweep`). KEY is a swept recipe key as the summary's
header names it: rows model.layers, columns model.d_model and lr optim.lr by default. With
--metric val_loss the lowest mean loss wins. Runs not done are left out and counted."""
import argparse
import csv
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--rows", default="model.layers")
    ap.add_argument("--columns", default="model.d_model")
    ap.add_argument("--lr", default="optim.lr")
    ap.add_argument("--metric", default="val_acc", choices=["val_acc", "val_loss"])
    ap.add_argument("--plot", type=Path)
    a = ap.parse_args()
    path = a.sweep_dir / "summary.csv"
    if not path.is_file():
        sys.exit(f"best-lr.py: {path} does not exist (run 'hyla sweep' first)")
    with open(path, newline="") as f:
        runs = list(csv.DictReader(f))
    for key in (a.rows, a.columns, a.lr):
        if runs and key not in runs[0]:
            sys.exit(f"best-lr.py: {path} has no column {key} (swept: "
                     f"{', '.join(k for k in runs[0] if '.' in k)})")
    # (row, column) -> lr -> [(metric, val_loss), ...] over the seeds
    cells = defaultdict(lambda: defaultdict(list))
    left_out = 0
    for r in runs:
        m, loss = number(r[a.metric]), number(r["val_loss"])
        if r["status"] != "done" or m is None:
            left_out += 1
            continue
        cells[(r[a.rows], r[a.columns])][r[a.lr]].append((m, loss))
    rows = list(dict.fromkeys(r[a.rows] for r in runs))
    columns = sorted(set(r[a.columns] for r in runs), key=lambda c: (number(c) is None, number(c) or 0, c))
    higher = a.metric == "val_acc"
    best = {}
    for cell, by_lr in cells.items():
        def rank(lr):  # the metric, then (accuracies tied, as at chance) the lower loss
            loss = [l for _, l in by_lr[lr] if l is not None]
            m = statistics.mean(x for x, _ in by_lr[lr])
            return (m if higher else -m, -statistics.mean(loss) if loss else 0.0)
        lr = max(by_lr, key=rank)
        ms = [m for m, _ in by_lr[lr]]
        sd = statistics.stdev(ms) if len(ms) > 1 else 0.0
        losses = [l for _, l in by_lr[lr] if l is not None]
        best[cell] = (statistics.mean(ms), sd, lr, statistics.mean(losses) if losses else None,
                      len(ms), len(by_lr))
    what = "accuracy" if higher else "validation loss"
    bracket = "; its validation loss in brackets" if higher else ""
    print(f"Best learning rate per {a.rows} and {a.columns} ({what}, mean ± sample sd over the "
          f"seeds, the value alone for one seed{bracket}; from {path}):\n")
    print(f"| {a.rows} | " + " | ".join(f"{a.columns} = {c}" for c in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for row in rows:
        out = []
        for c in columns:
            if (row, c) not in best:
                out.append("")
                continue
            m, sd, lr, loss, n, n_lr = best[(row, c)]
            loss_text = f" ({loss:.2f})" if loss is not None and higher else ""
            spread = f" ± {sd:.3f}" if n > 1 else ""  # one seed has no spread to give
            out.append(f"{m:.3f}{spread}{loss_text}, lr {lr}")
        print(f"| {row} | " + " | ".join(out) + " |")
    if left_out:
        print(f"\n{left_out} runs not done or without {a.metric} are left out.")
    if a.plot:
        plot(a, rows, columns, best, what)


def plot(a, rows, columns, best, what):
    data = a.plot.with_suffix(".dat")
    with open(data, "w") as f:
        for row in rows:
            f.write(f"# {row}\n")
            for c in columns:
                if (row, c) in best and number(c) is not None:
                    m, sd = best[(row, c)][:2]
                    f.write(f"{c} {m} {sd}\n")
            f.write("\n\n")
    lines = ", ".join(f"'{data}' index {i} using 1:2:3 with yerrorlines title '{row}'"
                      for i, row in enumerate(rows))
    script = (f"set terminal pngcairo size 900,600 noenhanced; set output '{a.plot}'; "
              f"set logscale x 2; set offsets graph 0.05, graph 0.05, 0.02, 0.02; "
              f"set xlabel '{a.columns}'; set ylabel 'best {what}'; set key outside right; "
              f"set xtics ({', '.join(c for c in columns if number(c) is not None)}); "
              f"plot {lines}")
    try:
        subprocess.run(["gnuplot", "-e", script], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"best-lr.py: gnuplot could not draw {a.plot}: {e}")
    print(f"\nplot: {a.plot}")


if __name__ == "__main__":
    main()
