#!/usr/bin/python3
"""Plots what a benchmark or a demo run printed, as a PNG (Debian's python3-matplotlib).

    /usr/bin/python3 bench/plot.py KIND INPUT OUTPUT.png

KIND and INPUT:
  lr_consistency     its JSON lines: objective against seconds, one line per consistency model
                     (with and without the straggler)
  cluster_lr         bench/cluster_lr.py's JSON lines: the same on the simulated cluster (the
                     first run of each model)
  ssp_staleness      its JSON lines: training RMSE against seconds, one line per staleness
                     (SSP and ESSP)
  consistency_bench  its JSON lines: requests per second per model, without and with a
                     straggler (bars: the bench measures rates, not a series over time)
  demo               the output of demo/linear run with --trace=on (as make demo does):
                     objective against seconds

Run it with Debian's interpreter, /usr/bin/python3: that is the one python3-matplotlib is
installed for (the python3 first on PATH may be another). Bad input is a one-line error.
"""
import json
import sys

WIDTH, HEIGHT, DPI = 6.4, 4.0, 100  # 640 x 400 pixels


class InputError(Exception):
    pass


def json_lines(path, key):
    """The JSON objects of "path" (one a line; other lines skipped) that have "key"."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if "] {" in line and line.startswith("["):  # a launcher-prefixed line
                    line = line.split("] ", 1)[1]
                if not line.startswith("{"):
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if key in row:
                    rows.append(row)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    if not rows:
        raise InputError(f"{path}: no JSON line with \"{key}\" in it")
    return rows


def figure(title, xlabel, ylabel):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT), dpi=DPI)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def lr_consistency(path, ax_of):
    return _lr_plot(json_lines(path, "trace"), ax_of)


def cluster_lr(path, ax_of):
    """bench/cluster_lr.py's JSON lines: as lr_consistency, on the simulated cluster."""
    rows = [r for r in json_lines(path, "trace") if r.get("trace")]
    first = rows[0]

    def titled(title, xlabel, ylabel):
        return ax_of(f"logistic regression on {first['workers']} worker hosts, "
                     f"{first['servers']} server host, {first['rate']} links", xlabel, ylabel)

    seen = set()
    unique = []
    for r in rows:  # the first run of each case (later rounds repeat it)
        if (r["model"], r["straggler_ms"]) not in seen:
            seen.add((r["model"], r["straggler_ms"]))
            unique.append(r)
    return _lr_plot(unique, titled)


def _lr_plot(rows, ax_of):
    fig, ax = ax_of("logistic regression by consistency model", "seconds", "objective")
    for r in rows:
        label = r["model"] + (f", straggler {r['straggler_ms']} ms" if r["straggler_ms"] else "")
        xs, ys = zip(*r["trace"])
        ax.plot(xs, ys, "--" if r["straggler_ms"] else "-", label=label)
    best = min(r["best"] for r in rows)
    ax.set_ylim(best * 0.995, max(r["trace"][min(1, len(r["trace"]) - 1)][1] for r in rows))
    return fig, ax


def ssp_staleness(path, ax_of):
    rows = json_lines(path, "rmse_per_clock")
    fig, ax = ax_of("matrix factorization by staleness, one straggler", "seconds",
                    "training RMSE")
    for r in rows:
        ax.plot(r["seconds_per_clock"], r["rmse_per_clock"], "--" if r["essp"] else "-",
                label=r["case"].replace("1000000", "inf"))
    return fig, ax


def consistency_bench(path, ax_of):
    rows = json_lines(path, "req_per_s")
    fig, ax = ax_of("requests per second by consistency model", "", "requests per second")
    models = [r["model"] for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["req_per_s"] for r in rows], 0.4, label="no straggler")
    ax.bar([x + 0.2 for x in xs], [r["straggler_req_per_s"] for r in rows], 0.4,
           label="one straggler")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(models)
    return fig, ax


def demo(path, ax_of):
    rows = json_lines(path, "trace")
    fig, ax = ax_of("make demo: logistic regression", "seconds", "objective")
    for r in rows:
        xs, ys = zip(*r["trace"])
        ax.plot(xs, ys, "-o", markersize=3, label=r.get("consistency", "run"))
    return fig, ax


KINDS = {"lr_consistency": lr_consistency, "cluster_lr": cluster_lr,
         "ssp_staleness": ssp_staleness,
         "consistency_bench": consistency_bench, "demo": demo}


def main(argv):
    if len(argv) != 3 or argv[0] not in KINDS:
        print(f"plot.py: error: usage: plot.py {{{','.join(KINDS)}}} INPUT OUTPUT.png",
              file=sys.stderr)
        return 2
    kind, path, out = argv
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plot.py: error: no matplotlib for this interpreter: run /usr/bin/python3 "
              "(make deps installs python3-matplotlib)", file=sys.stderr)
        return 1
    try:
        fig, ax = KINDS[kind](path, figure)
    except (InputError, KeyError, TypeError, ValueError) as e:
        what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        print(f"plot.py: error: {path}: {what}", file=sys.stderr)
        return 1
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    print(f"plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
