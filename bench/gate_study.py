"""The regression gate on real retrains: false alarms over seeds, detections over real regressions.

    python -m bench.gate_study                 # or: make gate-study (about 80 minutes on 2 cores)
    python -m bench.gate_study --recipe v2     # the one-network recipe of version 2 (30-50 minutes)
    python -m bench.gate_study --work DIR      # keep the trained models in DIR (a rerun reuses
                                               # those trained with the same recipe and data)

Trains `ml_original` again with the recipe and training data of a shipped version (the baseline
of every comparison here):
- `v3` (default): the shipped model, `trained_models/ml_original`, three networks averaged
  (seeds 42, 43, 44); retrained as three more such models with seeds 45-47, 48-50 and 51-53;
- `v2`: `trained_models/archive/ml_original_v2`, one network (seed 42); retrained with seeds
  43, 44 and 45.
Nothing changes but the seeds, so every class flagged between two of these is a false alarm.
Then the baseline's seeds again with a fixed half, and a fixed three quarters, of the pikachu
training images removed, and three quarters of the squirtle ones (real regressions of one class).
Serves the baseline and every retrain with the real model server, collects them all with
the collector into one SQLite database, and runs `compare` with the default rule ("scores") and
the rule of earlier versions ("mcnemar"), each seed pair in both directions and
the baseline against each degraded retrain — on the validation split first (where the defaults
were checked), then on test_data. Prints the Markdown tables of BENCHMARKS.md and writes every
number to bench/gate_study.json. With `v3`, each network of each of those models is then served
alone and compared the same way (a one-network study from the same trainings: 12 seeds, every
ordered pair, and 9 degraded networks, each against the baseline's network of the same seed).

The gate's thresholds are the CLI defaults, fixed before this study was run; the recipes are
those chosen on the training side. Nothing here looks at the test set to choose anything.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, servers
from collector.formatting import num
from model_creation.split_data import VALIDATION_DIR

BASE_LABELS = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"]
RECIPES = {
    "v3": {"dir": ROOT / "trained_models" / "ml_original", "members": 3, "seeds": (45, 48, 51)},
    "v2": {"dir": ROOT / "trained_models" / "archive" / "ml_original_v2", "members": 1, "seeds": (43, 44, 45)},
}
BASELINE = "v3"
REGRESSIONS = {
    "pikachu-50": {"seed": 42, "remove": ["pikachu:0.5"], "hurt": "pikachu"},
    "pikachu-75": {"seed": 42, "remove": ["pikachu:0.75"], "hurt": "pikachu"},
    "squirtle-75": {"seed": 42, "remove": ["squirtle:0.75"], "hurt": "squirtle"},
}


def seed_variants(recipe: str) -> dict[str, dict]:
    """The seed-only retrains of a recipe, named by their seeds ("seed43", "seeds45-47")."""
    k = RECIPES[recipe]["members"]
    return {(f"seed{s}" if k == 1 else f"seeds{s}-{s + k - 1}"): {"seed": s, "remove": []}
            for s in RECIPES[recipe]["seeds"]}


def reusable(out: Path, spec: dict, recipe: str, epochs: int | None, arch: str | None) -> bool:
    """A model trained by an earlier run with this recipe (the baseline's, unless overridden)."""
    if not ((out / "model.keras").is_file() and (out / "config.json").is_file()):
        return False
    have = json.loads((out / "config.json").read_text())
    baseline = json.loads((RECIPES[recipe]["dir"] / "config.json").read_text())
    same = (have["seed"] == spec["seed"]
            and have["training"].get("members", 1) == RECIPES[recipe]["members"]
            and have["architecture"] == (arch or baseline["architecture"])
            and have["training"]["epochs"] == (epochs or baseline["training"]["epochs"])
            and sorted(f"{k}:{v}" for k, v in have["training"].get("removed", {}).items()) == sorted(spec["remove"]))
    if same and not spec["remove"]:  # same data as version 2, or it is stale
        same = have["training_data_hash"] == baseline["training_data_hash"]
    return same


def train_variant(name: str, spec: dict, recipe: str, work: Path, epochs: int | None, arch: str | None) -> Path:
    out = work / name
    if reusable(out, spec, recipe, epochs, arch):
        print(f"{name}: trained already ({out})", flush=True)
        return out
    cmd = [sys.executable, "-m", "model_creation.train", "--labels", *BASE_LABELS, "--out", str(out),
           "--name", "ml_original", "--version", f"study-{name}", "--seed", str(spec["seed"]),
           "--members", str(RECIPES[recipe]["members"]), "--no-test"]
    for r in spec["remove"]:
        cmd += ["--remove", r]
    if epochs:
        cmd += ["--epochs", str(epochs)]
    if arch:
        cmd += ["--arch", arch]
    t0 = time.monotonic()
    print(f"{name}: training ({' '.join(cmd[3:])})", flush=True)
    log = work / f"{name}.log"
    with log.open("w") as f:
        r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    if r.returncode:
        raise SystemExit(f"error: training {name} failed; see {log}")
    print(f"{name}: trained in {time.monotonic() - t0:.0f} s", flush=True)
    return out


def networks_of(name: str, folder: Path, dest: Path) -> dict[str, Path]:
    """Each network of an averaged model as a one-network model folder ("NAME-net45"): the
    trainings of a three-network study are also three times as many one-network retrains."""
    import keras

    from model_creation.train import build_export

    config = json.loads((folder / "config.json").read_text())
    seeds = config["training"]["member_seeds"]
    dest.mkdir(parents=True, exist_ok=True)
    stamp = (folder / "model.keras").stat().st_mtime_ns
    out = {f"{name}-net{seed}": dest / f"{name}-net{seed}" for seed in seeds}
    if all((net / "config.json").is_file()
           and json.loads((net / "config.json").read_text()).get("study_source_mtime_ns") == stamp
           for net in out.values()):
        return out
    model = keras.models.load_model(folder / "model.keras", compile=False)
    shape, weights = tuple(model.input_shape[1:]), [model.get_layer(f"member_{i}").get_weights()
                                                     for i in range(len(seeds))]
    for net, seed, w in zip(out.values(), seeds, weights, strict=True):
        single = build_export(config["architecture"], shape, len(config["labels"]), [w])
        net.mkdir(exist_ok=True)
        single.save(net / "model.keras")
        training = {k: v for k, v in config["training"].items() if k not in ("members", "member_seeds")}
        one = {k: v for k, v in config.items() if k not in ("tflite", "metrics", "validation_metrics")}
        one.update(version=f"{config['version']}-net{seed}", seed=seed, training=training,
                   study_source_mtime_ns=stamp)
        (net / "config.json").write_text(json.dumps(one, indent=2))
    return out


def collect_all(folders: dict[str, Path], db_url: str, test_dir: Path = ROOT / "test_data") -> None:
    from collector.collect import CollectOptions, collect
    from collector.storage import store

    engine = store.make_engine(db_url)
    store.ensure_schema(engine)
    with servers(list(folders.values()), threads=2) as urls:
        results = collect(urls, engine=engine, test_dir=test_dir,
                          opts=CollectOptions(batch_size=32, echo_errors=False), say=lambda m: None)
    bad = [r for r in results if r.status.value not in ("completed", "skipped")]
    if bad:
        raise SystemExit(f"error: collection failed: {[(r.url, r.status.value, r.error) for r in bad]}")


def study_pairs(seed_models: list[str], regressions: list[tuple[str, str, str]]) -> list[tuple]:
    """Every ordered pair of the seed-only models, then each (baseline, degraded retrain, class hurt)."""
    return ([(a, b, "seed pair", None) for a, b in itertools.permutations(seed_models, 2)]
            + [(base, cand, "regression", hurt) for base, cand, hurt in regressions])


def run_comparisons(folders: dict[str, Path], db_url: str, pairs: list[tuple]) -> list[dict]:
    from collector.analysis.compare import Thresholds, compare
    from collector.storage import store
    from model_server.model import load_model_folder

    engine = store.make_engine(db_url)
    fps = {name: load_model_folder(path).fingerprint for name, path in folders.items()}
    with engine.connect() as conn:
        models = {name: store.find_model(conn, fingerprint=fps[name]) for name in folders}
        rows = {name: store.load_rows(conn, model_id=m.id) for name, m in models.items()}
    out = []
    for base, cand, kind, hurt in pairs:
        entry = {"baseline": base, "candidate": cand, "kind": kind, "hurt": hurt}
        for rule in ("scores", "mcnemar"):
            res = compare(models[base], rows[base], models[cand], rows[cand], Thresholds(rule=rule))
            entry[rule] = {"flagged": res["regressed_classes"], "verdict": res["verdict"]}
            if rule == "scores":
                entry["classes"] = {lab: {k: c[k] for k in ("n", "baseline", "candidate", "delta", "p_value",
                                                             "score_change", "score_p_value", "score_p_adjusted",
                                                             "min_detectable_drop", "status", "below_detectable",
                                                             "flagged_by")}
                                    for lab, c in res["classes"].items()}
        out.append(entry)
    return out


def summarize(comparisons: list[dict]) -> dict:
    summary = {}
    for rule in ("scores", "mcnemar"):
        seed = [c for c in comparisons if c["kind"] == "seed pair"]
        reg = [c for c in comparisons if c["kind"] == "regression"]
        summary[rule] = {
            "seed_pairs": len(seed),
            "seed_class_comparisons": sum(len(c["classes"]) for c in seed),
            "false_alarms_seed": sum(len(c[rule]["flagged"]) for c in seed),
            "regressions": len(reg),
            "detected": sum(c["hurt"] in c[rule]["flagged"] for c in reg),
            "other_classes_flagged": sum(len(set(c[rule]["flagged"]) - {c["hurt"]}) for c in reg),
        }
    return summary


def markdown(comparisons: list[dict], summary: dict, *, summary_only: bool = False,
             flagged_only: bool = False) -> str:
    """The class-by-class table (with `flagged_only`: the degraded classes and whatever either rule
    flagged) and the summary table."""
    lines = ["| baseline → candidate | class | recall | change | McNemar p | score change | "
             "score p (Holm) | MDD | new rule | old rule |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        for lab, x in c["classes"].items():
            if flagged_only and lab != c["hurt"] and lab not in c["scores"]["flagged"] + c["mcnemar"]["flagged"]:
                continue
            new = ("**flagged**" if lab in c["scores"]["flagged"] else
                   "dropped, below the detectable size" if x["below_detectable"] else
                   "dropped, not significant" if x["status"] == "dropped-not-significant" else "")
            old = "**flagged**" if lab in c["mcnemar"]["flagged"] else ""
            lines.append(
                f"| {c['baseline']} → {c['candidate']} | {lab}{' (degraded)' if lab == c['hurt'] else ''} | "
                f"{num(x['baseline'])} → {num(x['candidate'])} | {num(x['delta'], signed=True)} | "
                f"{num(x['p_value'])} | "
                f"{num(x['score_change'], signed=True)} | {num(x['score_p_adjusted'], 4)} | "
                f"{num(x['min_detectable_drop'], 2)} | {new} | {old} |")
    lines = [] if summary_only else lines + [""]
    lines += ["| rule | seed pairs (class comparisons) | false alarms | regressions caught | "
              "other classes flagged |", "|---|---|---|---|---|"]
    for rule, s in summary.items():
        name = "scores (default)" if rule == "scores" else "mcnemar (before)"
        lines.append(f"| {name} | {s['seed_pairs']} ({s['seed_class_comparisons']}) | {s['false_alarms_seed']} | "
                     f"{s['detected']} of {s['regressions']} | {s['other_classes_flagged']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=sorted(RECIPES), default=BASELINE,
                    help="the shipped version whose model and recipe are the baseline (default: %(default)s)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "gate_study_models",
                    help="where the retrained models go, one folder per recipe (reused when there)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "gate_study.json")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (trial runs of the pipeline only)")
    ap.add_argument("--arch", help="override the recipe's architecture (trial runs of the pipeline only)")
    args = ap.parse_args(argv)
    work = args.work / args.recipe
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    seeds = seed_variants(args.recipe)
    folders = {args.recipe: RECIPES[args.recipe]["dir"]}
    for name, spec in {**seeds, **REGRESSIONS}.items():
        folders[name] = train_variant(name, spec, args.recipe, work, args.epochs, args.arch)
    studies = {"models": (folders, study_pairs([args.recipe, *seeds], [
        (args.recipe, name, spec["hurt"]) for name, spec in REGRESSIONS.items()]))}
    if RECIPES[args.recipe]["members"] > 1:
        # Each network alone: the one-network recipe, retrained with 3 + 9 seeds, and each
        # degraded retrain compared with the baseline's network of the same seed.
        nets, seed_nets, degraded = {}, [], []
        for name, folder in folders.items():
            for net, path in networks_of(name, folder, work / "networks").items():
                nets[net] = path
                if name in REGRESSIONS:  # "pikachu-75-net43" against "v3-net43"
                    degraded.append((args.recipe + net.removeprefix(name), net, REGRESSIONS[name]["hurt"]))
                else:
                    seed_nets.append(net)
        studies["networks"] = (nets, study_pairs(seed_nets, degraded))
    result: dict = {"recipe": args.recipe, "baseline": str(RECIPES[args.recipe]["dir"].relative_to(ROOT))}
    # The validation split first: the rule's defaults were checked there before the test set was
    # looked at. It has ~15 images a class, so it shows false alarms more than detections.
    for study, (models, pairs) in studies.items():
        result[study] = {}
        for split, data in (("validation", VALIDATION_DIR), ("test", ROOT / "test_data")):
            db_path = work / f"study-{study}-{split}.db"
            if db_path.exists():
                os.remove(db_path)
            db_url = f"sqlite:///{db_path}"
            collect_all(models, db_url, test_dir=data)
            comparisons = run_comparisons(models, db_url, pairs)
            result[study][split] = {"comparisons": comparisons, "summary": summarize(comparisons)}
            print(f"\n## {study}: on the {split} split ({data.relative_to(ROOT)})\n")
            print(markdown(comparisons, result[study][split]["summary"],
                           summary_only=split == "validation", flagged_only=study == "networks"))
    result["seconds"] = round(time.monotonic() - t0)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out} ({result['seconds']} s)")
    return result


if __name__ == "__main__":
    main()
