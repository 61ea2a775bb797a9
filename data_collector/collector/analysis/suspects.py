"""Label suspects: test images whose given label looks wrong, from every stored probability.

The rule is confident learning (Northcutt et al., 2021), the `confident_learning` filter of
cleanlab's `find_label_issues`, applied per evaluated model and then put to a vote:

1. For a model, each class j gets a threshold t_j: the mean probability the model gives j on the
   images labelled j (its self-confidence on the class).
2. An image labelled y is *confidently* of class j when p_j >= t_j; of the classes it is
   confidently of, the most probable one counts. When that class is not y, the model flags the
   image, suggesting that class (an off-diagonal entry of cleanlab's confident joint), unless its
   answer (the most probable class) is y.
3. An image is a suspect when at least half of the models that evaluated it (and that know both
   labels) flag it; its suggestion is the one most of them make.

`tests/test_collector/analysis/test_suspects.py` checks step 1-2 against cleanlab's own implementation on
random probabilities. Lookalike probes have no label a model knows and are never suspects.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from sqlalchemy import Connection

from ..storage import store
from ..vocab import is_clean

MIN_VOTE = 0.5  # share of the models that saw an image that must flag it


def flag_issues(labels: list[int], probs: np.ndarray) -> list[int | None]:
    """Per image, the class a model confidently gives it when that is not its label, else None.
    `labels`: given class indices; `probs`: images x classes."""
    y = np.asarray(labels, dtype=int)
    k = probs.shape[1]
    thresholds = np.full(k, np.inf)
    for j in range(k):
        mine = probs[y == j, j]
        if len(mine):
            thresholds[j] = mine.mean()
    # A class with no images of its own keeps an infinite threshold: nothing is confidently it
    # (inf - inf would be nan, with numpy's warning).
    slack = np.where(np.isfinite(thresholds), 1e-6 * np.abs(thresholds), 0.0)
    confident = probs >= thresholds[None, :] - slack[None, :]
    out: list[int | None] = []
    for i in range(len(y)):
        cand = np.nonzero(confident[i])[0]
        if not len(cand):
            out.append(None)
            continue
        best = int(cand[np.argmax(probs[i, cand])])
        top = probs[i].copy()
        top[y[i]] += 1e-6  # a model whose answer is the given label does not flag it (cleanlab's rule too)
        out.append(best if best != y[i] and int(np.argmax(top)) != y[i] else None)
    return out


def label_suspects(conn: Connection, *, min_vote: float = MIN_VOTE) -> list[dict]:
    """The suspects of the stored evaluations, surest first: path, sha256, given label, suggested
    label, how many models flagged it of how many saw it, the mean probability of the given label."""
    seen: dict[tuple[str, str], dict] = {}
    flags: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for m in store.list_models(conn):
        rows = [r for r in store.load_rows(conn, model_id=m.id)
                if is_clean(r["kind"]) and r["label"] in m.labels and isinstance(r.get("scores"), dict)]
        if not rows:
            continue
        index = {lab: i for i, lab in enumerate(m.labels)}
        probs = np.array([[float(r["scores"].get(lab, 0.0)) for lab in m.labels] for r in rows])
        for r, flag in zip(rows, flag_issues([index[r["label"]] for r in rows], probs), strict=True):
            key = (r["sha256"], r["label"])
            s = seen.setdefault(key, {"sha256": r["sha256"], "path": r["path"], "label": r["label"],
                                      "kind": r["kind"], "seen_by": 0, "given_probability": []})
            s["seen_by"] += 1
            s["given_probability"].append(float(r["scores"].get(r["label"], 0.0)))
            if flag is not None:
                flags[key][m.labels[flag]] += 1
    out = []
    for key, votes in flags.items():
        s = seen[key]
        flagged = sum(votes.values())
        if flagged / s["seen_by"] >= min_vote:
            suggested, _ = votes.most_common(1)[0]
            out.append({**s, "suggested": suggested, "flagged_by": flagged,
                        "given_probability": float(np.mean(s["given_probability"]))})
    out.sort(key=lambda s: (-s["flagged_by"] / s["seen_by"], s["given_probability"], s["path"]))
    return out
