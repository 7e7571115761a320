#!/usr/bin/env python3
"""Cross-validated NAB figures: how the detector does on files it was not tuned on.

Every candidate configuration (a grid, JSON) is replayed over the NAB development split through
the live path (`sre-agent replay --config`), then scored with NAB's independent scorer:

* leave one category out (the two artificial categories are one fold: the no-anomaly files have
  no windows to normalise by): on the other folds the candidate *and* the threshold are chosen
  (best normalised standard score), and the left-out fold is scored at that threshold. This nested
  figure is the honest estimate for unseen files; the mean over folds is reported first, then the
  pooled one (all left-out folds normalised together, as a held-out corpus is scored);
* per candidate, the same with only the threshold chosen on the other folds: what a channel or a
  constant is judged by (it stays only if it raises this mean);
* split-half transfer: alternate files, each half's choice scored on the other half;
* last, the in-sample dev score (candidate and threshold chosen on all files): the number that
  must not be mistaken for the estimate.

    scripts/nab_cv.py [--nab ../shared/nab] [--grid scripts/nab_cv_grid.json] [--out target/nab_cv]
                      [--binary target/release/sre-agent] [--jobs 2] [--json FILE]

The grid: {"base": {"dotted.key": value, ...}, "candidates": [{"name": ..., "set": {...}}, ...],
"axes": {"dotted.key": [v1, v2, ...], ...}}; "axes" adds the product of its values (on top of
"base") as further candidates. Keys are config keys (e.g. anomaly_detection.novelty.range_unit).
"""

import argparse
import concurrent.futures
import hashlib
import itertools
import json
import os
import subprocess
import sys

PROFILE = "standard"


def nest(flat):
    out = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_grid(path):
    with open(path) as fh:
        grid = json.load(fh)
    base = grid.get("base", {})
    cands = []
    for c in grid.get("candidates", []):
        merged = dict(base)
        merged.update(c.get("set", {}))
        cands.append((c["name"], merged))
    axes = grid.get("axes", {})
    if axes:
        keys = sorted(axes)
        for values in itertools.product(*(axes[k] for k in keys)):
            merged = dict(base)
            merged.update(zip(keys, values))
            name = ",".join("%s=%s" % (k.split(".")[-1], v) for k, v in zip(keys, values))
            cands.append((name, merged))
    if not cands:
        cands.append(("default", dict(base)))
    names = [n for n, _ in cands]
    if len(set(names)) != len(names):
        sys.exit("grid: candidate names must be unique")
    return cands


def replay(binary, data, out_dir, settings):
    """Replays into out_dir/<hash of settings>; cached, so re-runs only replay what changed."""
    text = json.dumps(nest(settings), sort_keys=True)
    key = hashlib.sha256((text + binary_stamp(binary)).encode()).hexdigest()[:16]
    run_dir = os.path.join(out_dir, "runs", key)
    done = os.path.join(run_dir, "done")
    if os.path.exists(done):
        return run_dir
    os.makedirs(run_dir, exist_ok=True)
    config = os.path.join(run_dir, "config.yaml")
    with open(config, "w") as fh:
        fh.write(text + "\n")  # JSON is YAML
    results = os.path.join(run_dir, "results")
    proc = subprocess.run(
        [binary, "replay", "--input", data, "--output", results, "--config", config],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit("replay failed for %s:\n%s" % (text, proc.stderr))
    with open(done, "w") as fh:
        fh.write(proc.stdout)
    return run_dir


_stamps = {}


def binary_stamp(binary):
    if binary not in _stamps:
        st = os.stat(binary)
        _stamps[binary] = "%d:%d" % (st.st_mtime_ns, st.st_size)
    return _stamps[binary]


def category(rel):
    cat = rel.split("/")[0]
    return "artificial" if cat.startswith("artificial") else cat


class Scorer(object):
    def __init__(self, nab):
        sys.path.insert(0, nab)
        import nab_score  # the independent scorer, standard library only
        self.ns = nab_score
        self.data = os.path.join(nab, "data")
        self.labels = os.path.join(nab, "labels", "dev_windows.json")
        self.cache = {}
        self.files = nab_score.load_corpus(self.data, self.labels, None, self.cache)
        self.weights = nab_score.DEFAULT_PROFILES

    def runs(self, results_dir):
        run = self.ns.DetectorRun(self.files, results_dir=results_dir)
        return run.scores

    def score(self, scores, subset, threshold=None, profile=PROFILE):
        """(normalised, raw, null, perfect, threshold, counts) of `subset` (list of rels)."""
        files = [f for f in self.files if f.rel in subset]
        run = self.ns.DetectorRun(files, scores=scores)
        w = {profile: self.weights[profile]}
        thr = None if threshold is None else {profile: threshold}
        out = self.ns.score_run(files, run, w, thr)["profiles"][profile]
        return out


def fmt(x):
    return "  n/a" if x is None else "%5.1f" % x


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nab", default=os.path.join(root, "..", "shared", "nab"))
    ap.add_argument("--grid", default=os.path.join(here, "nab_cv_grid.json"))
    ap.add_argument("--out", default=os.path.join(root, "target", "nab_cv"))
    ap.add_argument("--binary", default=os.path.join(root, "target", "release", "sre-agent"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--quiet", action="store_true", help="only the summary lines")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.nab, "nab_score.py")):
        sys.exit("no NAB scorer at %s/nab_score.py" % args.nab)
    if not os.path.isfile(args.binary):
        sys.exit("no binary at %s: cargo build --release first" % args.binary)

    cands = load_grid(args.grid)
    scorer = Scorer(args.nab)
    data = scorer.data
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        dirs = list(pool.map(lambda c: replay(args.binary, data, args.out, c[1]), cands))
    scores = [scorer.runs(os.path.join(d, "results")) for d in dirs]

    rels = [f.rel for f in scorer.files]
    folds = {}
    for r in rels:
        folds.setdefault(category(r), []).append(r)
    fold_names = sorted(folds)

    # Per candidate and fold: the threshold chosen on the other folds, and both scores.
    per_cand = []
    for ci, (name, _) in enumerate(cands):
        rows = {}
        for fname in fold_names:
            train = [r for r in rels if r not in folds[fname]]
            tr = scorer.score(scores[ci], train)
            te = scorer.score(scores[ci], folds[fname], threshold=tr["threshold"])
            rows[fname] = {"train": tr["normalized"], "threshold": tr["threshold"],
                           "test": te["normalized"], "test_raw": te["raw_score"],
                           "test_null": te["null_score"], "test_perfect": te["perfect_score"],
                           "detected": te["counts"]["windows_detected"],
                           "windows": te["counts"]["windows_scorable"],
                           "fp_rows": te["counts"]["fp"]}
        dev = scorer.score(scores[ci], rels)
        per_cand.append({"name": name, "settings": cands[ci][1], "folds": rows,
                         "cv_mean": mean(rows[f]["test"] for f in fold_names),
                         "cv_pooled": pooled(rows[f] for f in fold_names),
                         "dev": dev["normalized"], "dev_threshold": dev["threshold"],
                         "dev_detected": dev["counts"]["windows_detected"],
                         "dev_windows": dev["counts"]["windows_scorable"],
                         "dev_fp_rows": dev["counts"]["fp"]})

    # Nested: the candidate too is chosen on the other folds.
    nested = {}
    for fname in fold_names:
        best = max(range(len(cands)), key=lambda ci: (per_cand[ci]["folds"][fname]["train"],
                                                      -ci))
        nested[fname] = dict(per_cand[best]["folds"][fname], candidate=cands[best][0])
    nested_mean = mean(nested[f]["test"] for f in fold_names)
    nested_pooled = pooled(nested[f] for f in fold_names)

    # Split-half transfer (alternate files in path order), candidate and threshold on one half.
    halves = [rels[0::2], rels[1::2]]
    split = []
    for a, b in ((0, 1), (1, 0)):
        tr = [scorer.score(s, halves[a]) for s in scores]
        best = max(range(len(cands)), key=lambda ci: (tr[ci]["normalized"], -ci))
        te = scorer.score(scores[best], halves[b], threshold=tr[best]["threshold"])
        split.append({"chosen_on": "AB"[a], "scored_on": "AB"[b], "candidate": cands[best][0],
                      "train": tr[best]["normalized"], "test": te["normalized"],
                      "threshold": tr[best]["threshold"]})

    dev_best = max(range(len(cands)), key=lambda ci: (per_cand[ci]["dev"], -ci))

    if not args.quiet:
        print("== per candidate: threshold chosen on the other folds (CV mean / pooled), dev "
              "in-sample")
        head = "%-40s %6s %6s %6s  " % ("candidate", "cvmean", "pooled", "dev")
        print(head + " ".join("%10s" % f[:10] for f in fold_names))
        for c in sorted(per_cand, key=lambda c: -c["cv_mean"]):
            print("%-40s %6s %6s %6s  " % (c["name"][:40], fmt(c["cv_mean"]),
                                           fmt(c["cv_pooled"]), fmt(c["dev"]))
                  + " ".join("%10s" % fmt(c["folds"][f]["test"]) for f in fold_names))
        print()
        print("== nested leave-one-category-out (candidate and threshold chosen on the rest)")
        for f in fold_names:
            n = nested[f]
            print("  %-20s test %s (train %s) at %.4f, %d/%d windows, %d FP rows: %s"
                  % (f, fmt(n["test"]), fmt(n["train"]), n["threshold"], n["detected"],
                     n["windows"], n["fp_rows"], n["candidate"]))
        print("== split-half transfer")
        for s in split:
            print("  chosen on %s (%s, %.4f, train %s) -> %s: %s"
                  % (s["chosen_on"], s["candidate"], s["threshold"], fmt(s["train"]),
                     s["scored_on"], fmt(s["test"])))
    d = per_cand[dev_best]
    print("CV (nested, leave one category out): mean %s, pooled %s; split-half %s / %s; "
          "dev in-sample %s at %.4f (%s, %d/%d windows, %d FP rows)"
          % (fmt(nested_mean), fmt(nested_pooled), fmt(split[0]["test"]),
             fmt(split[1]["test"]), fmt(d["dev"]), d["dev_threshold"], d["name"],
             d["dev_detected"], d["dev_windows"], d["dev_fp_rows"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"candidates": per_cand, "nested": nested, "nested_mean": nested_mean,
                       "nested_pooled": nested_pooled, "split_half": split,
                       "dev_best": d["name"]}, fh, indent=1)


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def pooled(rows):
    rows = list(rows)
    num = sum(r["test_raw"] - r["test_null"] for r in rows)
    den = sum(r["test_perfect"] - r["test_null"] for r in rows)
    return 100.0 * num / den if den > 0 else None


if __name__ == "__main__":
    main()
