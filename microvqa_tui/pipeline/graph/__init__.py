"""HiCQA-Graph: a heterogeneous image-caption-QA graph whose GNN scores each QA's consistency
with its figure and caption, trained on weak labels, synthetic negatives and human decisions.

Modules: `inputs` (plain arrays), `knn`, `build` (HeteroData), `weak_labels`, `corrupt`,
`model`, `train`, `filter`, `pipeline` (all of it on arrays), `run` (the store adapter:
`reading` the inputs, `writing` the results), `settings`, `synthetic` (a planted data set for
tests and benchmarks).

Importing this package is cheap: torch and PyG load when a name below is first used.
"""

from __future__ import annotations

from microvqa_tui.common.lazy import lazy_names
from microvqa_tui.config.graph import GraphSettings

_LAZY = {
    "GraphInputs": "inputs",
    "SignalTable": "inputs",
    "Embeddings": "inputs",
    "build_graph": "build",
    "HiCQAGraph": "build",
    "make_targets": "weak_labels",
    "HiCQAGNN": "model",
    "evaluate": "train",
    "filter_scores": "filter",
    "fit_and_filter": "pipeline",
    "run_graph": "run",
    "GraphReport": "run",
}

__all__ = ["GraphSettings", *_LAZY]


__getattr__ = lazy_names(__name__, _LAZY)
