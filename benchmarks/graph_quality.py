"""Quality of the HiCQA-Graph consistency score against single signals and other scorers.

    python benchmarks/graph_quality.py                      # planted data, 3 seeds
    python benchmarks/graph_quality.py --figures 2000 --seeds 0 1 2 3 4 --json out.json
    python benchmarks/graph_quality.py --relational 0       # per-QA corruptions only
    python benchmarks/graph_quality.py --store PATH         # a real store, judged by reviews

Planted data (`microvqa_tui.pipeline.graph.synthetic.planted`): figures in topics, captions of
varying quality, QAs near their caption in embedding space, signals drawn from each QA's
latent consistency with per-signal noise, signals missing for 10-50% of QAs. Corrupted QAs
(labels known, never used for training) of two per-QA kinds - wrong figure, contradicted
answer (`--corrupt`, 10% of QAs) - and four relational kinds (`--relational`, 3.5% each, see
`microvqa_tui.pipeline.graph.relational`): a whole caption written for another figure, a
QA on a near-duplicate figure, a QA contradicting a sibling of its caption, clusters of
near-identical generic questions. The graph learns from its weak labels and its own
synthetic negatives only.

Compared in one run, on the same QAs: each single signal (direction-corrected; a QA without
it gets the signal's median); the plain average of the available signals' percentile
ranks; logistic regression and gradient boosting (scikit-learn) on the QA's own signal
features, and on those + the graph's neighbourhood-agreement features, trained on the very
same targets as the GNN (weak labels + synthetic negatives); label propagation of the weak
labels' posterior over the QA links (nearest QAs, caption siblings); the GNN (`--ablations`:
also without k-NN edges). One table: ROC-AUC (clean vs corrupted) / precision at the keep
cut, overall and per corruption kind (clean QAs vs that kind's).
With `--store`, the labels are the store's human accept/reject decisions, used for
evaluation only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.pipeline.graph.baselines import (
    logistic,
    propagate,
    signal_features,
    training_rows,
)
from microvqa_tui.pipeline.graph.filter import select
from microvqa_tui.pipeline.graph.inputs import SIGNAL_DIRECTIONS, GraphInputs
from microvqa_tui.pipeline.graph.pipeline import GraphOutcome, fit_and_filter
from microvqa_tui.pipeline.graph.relational import RELATIONAL_KINDS
from microvqa_tui.pipeline.graph.synthetic import CLEAN, KIND_NAMES, WRONG_FIGURE, planted
from microvqa_tui.pipeline.graph.train import roc_auc


def single_signal_scores(inputs: GraphInputs) -> dict[str, np.ndarray]:
    out = {}
    sig = inputs.signals
    for j, name in enumerate(sig.names):
        avail = sig.mask[:, j]
        if not avail.any():
            continue
        direction = SIGNAL_DIRECTIONS.get(name, 1)
        values = direction * sig.values[:, j]
        out[name] = np.where(avail, values, np.median(values[avail]))
    return out


def plain_average(inputs: GraphInputs) -> np.ndarray:
    """Mean percentile rank of the available, direction-corrected signals (0.5 if none)."""
    sig = inputs.signals
    total = np.zeros(inputs.n_qa)
    count = np.zeros(inputs.n_qa)
    for j, name in enumerate(sig.names):
        avail = sig.mask[:, j]
        if not avail.any():
            continue
        values = SIGNAL_DIRECTIONS.get(name, 1) * sig.values[avail, j]
        ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable") / max(
            len(values) - 1, 1
        )
        total[avail] += ranks
        count[avail] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.5)


def gradient_boosting(x: np.ndarray, targets, n_real: int, seed: int) -> np.ndarray:
    """scikit-learn's histogram gradient boosting on the same rows, hard targets, weights."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows = training_rows(targets)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    model.fit(x[rows], targets.y[rows] >= 0.5, sample_weight=targets.weight[rows])
    return model.predict_proba(x[:n_real])[:, 1]


def scorers(inputs: GraphInputs, outcome: GraphOutcome, seed: int) -> dict[str, np.ndarray]:
    """Every score compared, over the real QAs."""
    g, t, n = outcome.graph, outcome.targets, outcome.graph.n_real
    out = {f"signal: {k}": v for k, v in single_signal_scores(inputs).items()}
    out["plain average of signals"] = plain_average(inputs)
    x_sig = signal_features(g)
    x_nbr = signal_features(g, neighbourhood=True)
    out["logistic regression (signals)"] = logistic(x_sig, t, seed=seed)[:n]
    out["logistic regression (signals + neighbourhood)"] = logistic(x_nbr, t, seed=seed)[:n]
    out["gradient boosting (signals)"] = gradient_boosting(x_sig, t, n, seed)
    out["gradient boosting (signals + neighbourhood)"] = gradient_boosting(x_nbr, t, n, seed)
    out["label propagation (weak posterior)"] = propagate(g, outcome.weak.posterior)
    out["HiCQA-Graph GNN"] = outcome.scores
    return out


def kind_metrics(kind: np.ndarray, score: np.ndarray, keep_fraction: float) -> dict[str, tuple]:
    """(ROC-AUC, precision at the keep cut) overall and per corruption kind (clean QAs vs
    that kind's; precision among the kept QAs that are clean or of that kind)."""
    keep, _ = select(score, keep_fraction=keep_fraction)
    clean = kind == CLEAN
    out = {"overall": (roc_auc(clean, score) or float("nan"), float(clean[keep].mean()))}
    for code, name in KIND_NAMES.items():
        rows = clean | (kind == code)
        if not (kind == code).any():
            continue
        kept = keep & rows
        out[name] = (roc_auc(clean[rows], score[rows]), float(clean[kept].mean()))
    return out


def evaluate_one(data, settings, device, ablations: bool, seed: int) -> dict[str, dict]:
    inputs = data.inputs
    clock = time.perf_counter()
    outcome = fit_and_filter(inputs, settings, device=device, explain=False)
    seconds = time.perf_counter() - clock
    scores = scorers(inputs, outcome, seed)
    if ablations:
        no_knn = fit_and_filter(
            inputs, settings.model_copy(update={"knn_k": 0}), device=device, explain=False
        )
        scores["HiCQA-Graph GNN without k-NN edges"] = no_knn.scores
    weak, consistent = outcome.weak, data.consistent
    labelled = weak.label >= 0
    lf_acc = float((weak.label[labelled] == consistent[labelled]).mean()) if labelled.any() else 0
    print(
        f"  seed {seed}: {inputs.n_qa} QAs, {int((~consistent).sum())} corrupted; weak labels cover "
        f"{weak.coverage:.0%} of QAs at {lf_acc:.1%} accuracy; {len(outcome.negatives)} synthetic "
        f"negatives; {outcome.metrics['epochs_run']} epochs; graph fit {seconds:.1f} s",
        flush=True,
    )
    return {name: kind_metrics(data.kind, s, settings.keep_fraction) for name, s in scores.items()}


def print_table(results: list[dict[str, dict]], keep_fraction: float) -> dict:
    """One row per scorer, one `AUC / precision` cell per kind (mean over seeds)."""
    names = list(results[0])
    kinds = list(results[0][names[0]])
    mean = {
        name: {
            k: tuple(np.nanmean([r[name][k] for r in results], axis=0).round(3).tolist())
            for k in kinds
        }
        for name in names
    }
    width = max(len(n) for n in names) + 1
    cell = max(13, *(len(k) + 1 for k in kinds))
    print(
        f"\nROC-AUC / precision at the keep cut ({keep_fraction:.0%} kept), mean of {len(results)} seed(s)"
    )
    head = f"{'score':<{width}}" + "".join(f"{k:>{cell}}" for k in kinds)
    print(head)
    print("-" * len(head))
    for name in names:
        cells = "".join(f"{m[0]:.3f}/{m[1]:.3f}".rjust(cell) for m in mean[name].values())
        print(f"{name:<{width}}{cells}")
    learned = [n for n in names if not n.startswith(("signal: ", "plain"))]
    best = max(learned, key=lambda n: mean[n]["overall"][0])
    gnn = mean["HiCQA-Graph GNN"]["overall"][0]
    print(f"\nbest overall AUC: {best} ({mean[best]['overall'][0]:.3f}); GNN {gnn:.3f}")
    return mean


def run_planted(args) -> None:
    settings = GraphSettings(keep_fraction=args.keep, epochs=args.epochs, knn_k=args.knn_k)
    relational = {k: args.relational for k in RELATIONAL_KINDS} if args.relational else {}
    results = []
    print(
        f"planted data: {args.figures} figures, {args.corrupt:.0%} of QAs corrupted per QA "
        f"({args.contradicted:.0%} of them contradicted, the rest on the wrong figure), "
        f"{args.relational:.1%} each of {', '.join(relational) or 'no relational kind'}"
    )
    for seed in args.seeds:
        data = planted(
            args.figures,
            seed=seed,
            corrupt_fraction=args.corrupt,
            contradicted_share=args.contradicted,
            clustered=args.clustered,
            relational=relational,
            text_dim=args.dim,
            clip_dim=args.dim,
        )
        s = settings.model_copy(update={"seed": seed})
        results.append(evaluate_one(data, s, args.device, args.ablations, seed))
    mean = print_table(results, args.keep)
    if args.json:
        args.json.write_text(json.dumps(mean, indent=2))


def run_store(args) -> None:
    from microvqa_tui.pipeline.graph.pipeline import human_array
    from microvqa_tui.pipeline.graph.run import human_labels_from_store, read_inputs
    from store import open_store

    store = open_store(args.store)
    inputs, found = read_inputs(store)
    labels = human_array(inputs.qa_ids, human_labels_from_store(store))
    print(
        f"store {args.store}: {inputs.n_qa} QAs, signals {inputs.signals.present()}, "
        f"spaces {found['embedding_spaces']}"
    )
    if labels is None:
        print("no human accept/reject decisions in this store: nothing to evaluate against")
        return
    judged = labels >= 0
    print(
        f"{int(judged.sum())} QAs with a human decision ({int((labels == 0).sum())} rejected), "
        "used for evaluation only"
    )
    settings = GraphSettings(keep_fraction=args.keep, epochs=args.epochs, knn_k=args.knn_k)
    outcome = fit_and_filter(inputs, settings, device=args.device, explain=False)
    kind = np.where(labels == 1, CLEAN, WRONG_FIGURE)[judged]  # rejected: one kind, "bad"
    rows = {
        name: kind_metrics(kind, score[judged], args.keep)
        for name, score in scorers(inputs, outcome, 0).items()
    }
    print_table([rows], args.keep)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store", type=Path, help="evaluate on a store's QAs against its human decisions"
    )
    parser.add_argument(
        "--figures", type=int, default=1000, help="planted figures (about 4.6 QAs each)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--corrupt",
        type=float,
        default=0.1,
        help="share of QAs corrupted per QA (wrong figure, contradicted)",
    )
    parser.add_argument(
        "--contradicted", type=float, default=0.5, help="share of corruptions that contradict"
    )
    parser.add_argument(
        "--clustered",
        type=float,
        default=0.0,
        help="share of the corruption falling on poor captions' QAs",
    )
    parser.add_argument(
        "--relational",
        type=float,
        default=0.035,
        help="share of QAs given each relational corruption (caption_wrong, near_duplicate, "
        "sibling_contradiction, generic); 0 = none",
    )
    parser.add_argument("--json", type=Path, help="also write the mean table to this file")
    parser.add_argument("--dim", type=int, default=64, help="embedding width of the planted data")
    parser.add_argument("--keep", type=float, default=0.75, help="keep fraction")
    parser.add_argument("--epochs", type=int, default=GraphSettings().epochs)
    parser.add_argument("--knn-k", type=int, default=GraphSettings().knn_k)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--ablations", action="store_true", help="also the graph without k-NN edges"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.store:
        run_store(args)
    else:
        run_planted(args)


if __name__ == "__main__":
    main()
