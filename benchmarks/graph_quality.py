"""Quality of the HiCQA-Graph consistency score against single signals and simple combiners.

    python benchmarks/graph_quality.py                      # planted data, 3 seeds
    python benchmarks/graph_quality.py --figures 2000 --seeds 0 1 2 3 4
    python benchmarks/graph_quality.py --store PATH         # a real store, judged by reviews

Planted data (`microvqa_tui.pipeline.graph.synthetic.planted`): figures in topics, captions of
varying quality, QAs near their caption in embedding space, signals drawn from each QA's
latent consistency with per-signal noise (CLIP ones weak, agents binary and noisy, NLI
missing a share of contradictions), signals missing for 10-50% of QAs; a fixed fraction of
QAs (default 20%) corrupted - attached to the wrong figure or answer contradicted - whose
labels are known. No label reaches training: the graph learns from its weak labels and its
own synthetic negatives only.

Compared, on the same QAs:
* each single signal (direction-corrected; a QA without it gets the signal's median);
* the plain average of the available signals' percentile ranks;
* a logistic regression on the signal features trained on the very same targets as the
  graph (weak labels + synthetic negatives): what the learning buys without the graph;
  and the same with the graph's neighbourhood-agreement features added (share of a QA's
  nearest QAs on its figure / caption): what the hand-made graph features buy without the GNN;
* the graph without its k-NN edges (`--ablations`);
* the HiCQA-Graph.
Metrics: ROC-AUC (consistent vs corrupted), precision at the keep threshold (share of
consistent QAs among the kept 75%) and the share of corrupted QAs held out (recall).
With `--store`, the labels are the store's human accept/reject decisions, used for
evaluation only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.pipeline.graph.build import Standardizer
from microvqa_tui.pipeline.graph.filter import select
from microvqa_tui.pipeline.graph.inputs import SIGNAL_DIRECTIONS, GraphInputs
from microvqa_tui.pipeline.graph.pipeline import GraphOutcome, fit_and_filter
from microvqa_tui.pipeline.graph.synthetic import planted
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


def signal_regression(
    outcome: GraphOutcome, seed: int, *, neighbourhood: bool = False
) -> np.ndarray:
    """Logistic regression on [standardised value, available] per signal (and, with
    `neighbourhood`, the graph's 4 neighbourhood-agreement features), same targets."""
    g, t = outcome.graph, outcome.targets
    std = Standardizer.fit(g.qa_signals.rows(np.arange(g.n_real)))
    x = torch.from_numpy(std.features(g.qa_signals.values, g.qa_signals.mask))
    if neighbourhood:
        off = g.qa_signal_offset
        x = torch.cat([x, g.data["qa"].x[:, off - 4 : off]], dim=1)
    rows = torch.from_numpy(np.flatnonzero(t.train & (t.weight > 0)))
    y = torch.from_numpy(t.y)[rows]
    w = torch.from_numpy(t.weight)[rows]
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200)

    def closure():
        opt.zero_grad()
        logits = model(x[rows]).squeeze(-1)
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * w
        ).sum() / w.sum()
        loss = loss + 1e-3 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.sigmoid(model(x[: g.n_real]).squeeze(-1)).numpy()


def metrics(
    consistent: np.ndarray, score: np.ndarray, keep_fraction: float
) -> tuple[float, float, float]:
    keep, _ = select(score, keep_fraction=keep_fraction)
    auc = roc_auc(consistent, score) or float("nan")
    precision = float(consistent[keep].mean()) if keep.any() else float("nan")
    bad = ~consistent
    recall = float((~keep[bad]).mean()) if bad.any() else float("nan")
    return auc, precision, recall


def evaluate_one(
    inputs, consistent, settings, device, ablations: bool, seed: int
) -> dict[str, tuple]:
    rows: dict[str, tuple] = {}
    for name, score in single_signal_scores(inputs).items():
        rows[f"signal: {name}"] = metrics(consistent, score, settings.keep_fraction)
    rows["plain average of signals"] = metrics(
        consistent, plain_average(inputs), settings.keep_fraction
    )
    clock = time.perf_counter()
    outcome = fit_and_filter(inputs, settings, device=device, explain=False)
    seconds = time.perf_counter() - clock
    rows["logistic regression on signals (same targets)"] = metrics(
        consistent, signal_regression(outcome, seed), settings.keep_fraction
    )
    rows["logistic regression on signals + neighbourhood features"] = metrics(
        consistent, signal_regression(outcome, seed, neighbourhood=True), settings.keep_fraction
    )
    if ablations:
        no_knn = fit_and_filter(
            inputs, settings.model_copy(update={"knn_k": 0}), device=device, explain=False
        )
        rows["HiCQA-Graph without k-NN edges"] = metrics(
            consistent, no_knn.scores, settings.keep_fraction
        )
    rows["HiCQA-Graph"] = metrics(consistent, outcome.scores, settings.keep_fraction)
    weak = outcome.weak
    labelled = weak.label >= 0
    lf_acc = (
        float((weak.label[labelled] == consistent[labelled]).mean())
        if labelled.any()
        else float("nan")
    )
    print(
        f"  seed {seed}: {inputs.n_qa} QAs, {int((~consistent).sum())} corrupted; weak labels cover "
        f"{weak.coverage:.0%} of QAs at {lf_acc:.1%} accuracy; {len(outcome.negatives)} synthetic "
        f"negatives; {outcome.metrics['epochs_run']} epochs; graph fit {seconds:.1f} s",
        flush=True,
    )
    return rows


def print_table(results: list[dict[str, tuple]], keep_fraction: float) -> None:
    names = list(results[0])
    width = max(len(n) for n in names) + 2
    head = f"{'score':<{width}}{'ROC-AUC':>16}{f'precision@keep {keep_fraction:.0%}':>24}{'corrupted held out':>22}"
    print()
    print(head)
    print("-" * len(head))
    best_single = max(
        (n for n in names if n.startswith("signal: ")),
        key=lambda n: np.mean([r[n][0] for r in results]),
    )
    for name in names:
        vals = np.array([r[name] for r in results])
        mean, sd = vals.mean(0), vals.std(0)
        cells = [
            f"{m:.3f} ± {s:.3f}" if len(results) > 1 else f"{m:.3f}"
            for m, s in zip(mean, sd, strict=True)
        ]
        mark = "  <- best single signal" if name == best_single else ""
        print(f"{name:<{width}}{cells[0]:>16}{cells[1]:>24}{cells[2]:>22}{mark}")
    graph = np.array([r["HiCQA-Graph"][0] for r in results])
    single = np.array([r[best_single][0] for r in results])
    wins = int((graph > single).sum())
    print(
        f"\nHiCQA-Graph AUC - best single signal ({best_single[8:]}) AUC: "
        f"{(graph - single).mean():+.3f} on average; graph better on {wins}/{len(results)} seeds."
    )


def run_planted(args) -> None:
    settings = GraphSettings(keep_fraction=args.keep, epochs=args.epochs, knn_k=args.knn_k)
    results = []
    print(
        f"planted data: {args.figures} figures, {args.corrupt:.0%} corrupted "
        f"({args.contradicted:.0%} of them contradicted, the rest on the wrong figure; "
        f"{args.clustered:.0%} of the corruption on poor captions' QAs)"
    )
    for seed in args.seeds:
        data = planted(
            args.figures,
            seed=seed,
            corrupt_fraction=args.corrupt,
            contradicted_share=args.contradicted,
            clustered=args.clustered,
            text_dim=args.dim,
            clip_dim=args.dim,
        )
        s = settings.model_copy(update={"seed": seed})
        results.append(
            evaluate_one(data.inputs, data.consistent, s, args.device, args.ablations, seed)
        )
    print_table(results, args.keep)


def run_store(args) -> None:
    from microvqa_tui.pipeline.graph.pipeline import human_array
    from microvqa_tui.pipeline.graph.run import human_labels_from_store, read_inputs
    from store import open_store

    store = open_store(args.store)
    inputs, found = read_inputs(store)
    labels = human_array(inputs.qa_ids, human_labels_from_store(store))
    print(
        f"store {args.store}: {inputs.n_qa} QAs, signals {inputs.signals.present()}, spaces {found['embedding_spaces']}"
    )
    if labels is None:
        print("no human accept/reject decisions in this store: nothing to evaluate against")
        return
    judged = labels >= 0
    print(
        f"{int(judged.sum())} QAs with a human decision ({int((labels == 0).sum())} rejected), used for evaluation only"
    )
    settings = GraphSettings(keep_fraction=args.keep, epochs=args.epochs, knn_k=args.knn_k)
    consistent_all = labels == 1
    rows: dict[str, tuple] = {}
    for name, score in single_signal_scores(inputs).items():
        rows[f"signal: {name}"] = metrics(consistent_all[judged], score[judged], args.keep)
    rows["plain average of signals"] = metrics(
        consistent_all[judged], plain_average(inputs)[judged], args.keep
    )
    outcome = fit_and_filter(inputs, settings, device=args.device, explain=False)
    rows["logistic regression on signals (same targets)"] = metrics(
        consistent_all[judged], signal_regression(outcome, 0)[judged], args.keep
    )
    rows["HiCQA-Graph"] = metrics(consistent_all[judged], outcome.scores[judged], args.keep)
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
    parser.add_argument("--corrupt", type=float, default=0.2, help="fraction of QAs corrupted")
    parser.add_argument(
        "--contradicted", type=float, default=0.5, help="share of corruptions that contradict"
    )
    parser.add_argument(
        "--clustered",
        type=float,
        default=0.0,
        help="share of the corruption falling on poor captions' QAs",
    )
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
