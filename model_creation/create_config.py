"""Write `config.json` (and the model card) next to a trained model.

`config.json` is what the model server reads: name, version, labels in output order, input
size and preprocessing, plus provenance (architecture, training-data hash, seed, library
versions, per-class metrics on test_data, created_at).
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from collector.formatting import num
from model_server.model import CONFIG_FILE
from model_server.preprocessing import Preprocessing


def library_versions() -> dict:
    import keras
    import numpy
    import PIL
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


def create_config(out_dir: Path, *, name: str, version: str, labels: list[str], spec: Preprocessing,
                  architecture: str, training_data_hash: str, seed: int, metrics: dict,
                  training: dict | None = None, validation_metrics: dict | None = None) -> dict:
    config = {
        "name": name,
        "version": version,
        "labels": list(labels),
        "input": {"height": spec.height, "width": spec.width, "channels": 3},
        "preprocessing": spec.to_dict(),
        "architecture": architecture,
        "training_data_hash": training_data_hash,
        "seed": seed,
        "training": training or {},
        "library_versions": library_versions(),
        "metrics": metrics,
        "validation_metrics": validation_metrics or {},
        "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return config


def export_card_line(record: dict) -> str:
    """The model card's line on the LiteRT export (written by training and by `model_creation.export`)."""
    return (f"- LiteRT export: `{record['file']}`, {record['bytes'] / 1e6:.2f} MB, sha256 `{record['sha256'][:12]}`, "
            f"from the weights above ({record['converter']}; largest probability difference "
            f"{record['max_abs_diff_check']:.1g} on a check batch)")


def write_model_card(out_dir: Path, config: dict, *, fingerprint: str, command: str, n_params: int,
                     model_bytes: int) -> None:
    seeds = config["training"].get("member_seeds") or [config["seed"]]
    networks = (f", {len(seeds)} networks trained alike with seeds {', '.join(map(str, seeds))}, their "
                "probabilities averaged" if len(seeds) > 1 else "")
    lines = [
        f"# Model card: {config['name']} (version {config['version']})",
        "",
        f"- Labels (output order): {', '.join(config['labels'])}",
        f"- Architecture: `{config['architecture']}`{networks}; {n_params:,} parameters, model file "
        f"{model_bytes / 1e6:.2f} MB (no optimizer state)",
        f"- Input: {config['input']['height']}x{config['input']['width']} RGB, preprocessing "
        f"`{json.dumps(config['preprocessing'])}`",
        f"- Fingerprint: `{fingerprint}`",
        *([export_card_line(config["tflite"])] if config.get("tflite") else []),
        f"- Training data hash: `{config['training_data_hash']}`, seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))}",
        f"- Training: `{json.dumps(config['training'])}`",
        f"- Libraries: `{json.dumps(config['library_versions'])}`",
        f"- Created: {config['created_at']}",
        "",
        "## How it was produced",
        "",
        "```",
        command,
        "```",
        "",
        "The numbers below were computed by that command at the end of training, on the preset",
        "test data in `test_data/` (never seen in training; sprite animations kept on one side).",
        "",
    ]
    lines += _metric_sections(config) + _reproducing(config)
    lines += ["## Limits", "",
              "Trained from scratch on a few hundred images per class; classes outside the label list",
              "(e.g. the lookalike probes in `test_data/lookalikes/`) are still forced onto one of the",
              "labels. Mimikyu and ditto exist only as sprites, so their numbers rest on a handful of",
              "test images.", ""]
    (out_dir / "MODEL_CARD.md").write_text("\n".join(lines))


def _metric_sections(config: dict) -> list[str]:
    """The card's per-class tables: test subsets, then the validation split."""
    lines: list[str] = []
    sections = [("Test", subset, m) for subset, m in config["metrics"].items()]
    sections += [("Validation", subset, m) for subset, m in config.get("validation_metrics", {}).items()
                 if subset == "all"]
    for where, subset, m in sections:
        if not m.get("n"):
            continue
        if where == "Validation":
            lines += ["The validation split (`model_creation/validation/`, carved from the training side) is where",
                      "the recipe was chosen (the number of networks too:",
                      "`python -m model_creation.ensemble_validation`); it is not used for training.", ""]
        lines += [f"## {where} {subset}: accuracy {num(m['accuracy'])} on {m['n']} images", "",
                  "| class | support | recall | precision | F1 |", "|---|---|---|---|---|"]
        for lab, c in m["classes"].items():
            lines.append(f"| {lab} | {c['support']} | {num(c['recall'])} | {num(c['precision'])} | "
                         f"{num(c['f1'])} |")
        lines.append("")
    return lines


def _reproducing(config: dict) -> list[str]:
    """How the exact weights are reproduced: the CPU features and thread settings training used."""
    lines: list[str] = []
    plat = config["training"].get("platform")
    if plat:
        lines += ["## Reproducing these weights", "",
                  "The command above gives these exact weights (this fingerprint) with the same data, seed and",
                  f"library versions on an {plat['machine']} CPU with the same instruction-set features as the",
                  f"one that trained it ({plat['cpu']}):", "",
                  f"`{' '.join(plat['isa_flags']) or 'unknown'}`", "",
                  "The core count and thread settings do not matter: training pins TensorFlow to "
                  f"{plat['threads']['intra_op']} intra-op",
                  f"and {plat['threads']['inter_op']} inter-op threads.",
                  "On a CPU with other features (another generation: AVX-512 or AMX present or absent)",
                  "oneDNN runs other kernels, floats add up in another order, and the retrained model has",
                  "other weights: a new fingerprint, which the collector evaluates as a new model.", ""]
    return lines
