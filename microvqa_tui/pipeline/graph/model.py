"""The GNN: per-type projections, `layers` HeteroConv layers, a consistency head on QA nodes.

* Every relation uses GraphSAGE mean aggregation (`MeanConv`) over a `MeanAdjacency`: one
  sparse-dense product per relation and layer forward, one backward, no edges x hidden
  intermediate, so an epoch costs about edges x hidden and 1M-QA graphs stay in memory
  (PyG's edge_index scatter where a device has no sparse CSR products). The layers are
  combined by PyG's HeteroConv over the HeteroData graph. A QA's own signals are in its features, so a
  caption or image hearing the mean of its QAs' states hears their signals too.
* With `attention`, the relations into caption and image nodes (a caption hears its QAs,
  an image its QAs and captions) use GATv2Conv with the signals as edge attributes, so the
  signals decide how much each QA counts. Off by default: profiled at 10k QAs, an epoch's
  time went into `torch.sparse.mm(reduce="mean")`'s backward (a re-sort and dense
  temporaries per call) and these layers' per-edge work (edge MLPs, scatter softmax), while
  the QA's signals already reach captions and images through its state. (Attention over a
  QA's single caption would be a softmax over one edge, i.e. constant.)

Only the pure-torch paths of PyG are used: no torch-scatter / torch-sparse / pyg-lib.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, HeteroConv
from torch_geometric.utils import scatter

from microvqa_tui.pipeline.graph.build import QA_RELATIONS, EdgeType, HiCQAGraph
from microvqa_tui.pipeline.graph.inputs import NODE_TYPES


def uses_attention(rel: EdgeType, attention: bool = True) -> bool:
    """Whether `rel` runs GATv2 (with `attention`: relations into caption and image nodes)."""
    return attention and rel[1] != "knn" and rel[2] != "qa"


class MeanAdjacency:
    """Mean aggregation over one relation as two precomputed sparse CSR products: forward
    `A @ x` with `A` [dst, src] row-normalised, backward `A.T @ grad`.

    torch's own `sparse.mm(csr, x, reduce="mean")` re-sorts the transposed matrix and
    allocates dense dst x src temporaries in every backward pass (profiled: most of an
    epoch); with both orientations built once, an epoch costs two SpMMs per relation.
    """

    def __init__(self, edge_index: Tensor, n_src: int, n_dst: int, device: torch.device) -> None:
        src, dst = edge_index.to(device)
        ones = torch.ones(src.shape[0], dtype=torch.float32, device=device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sparse CSR is flagged beta
            coo = torch.sparse_coo_tensor(torch.stack([dst, src]), ones, (n_dst, n_src))
            coo = coo.coalesce()
            rows = coo.indices()[0]
            degree = torch.zeros(n_dst, device=device).index_add_(0, rows, coo.values())
            values = coo.values() / degree[rows]
            normalised = torch.sparse_coo_tensor(coo.indices(), values, (n_dst, n_src))
            self.forward = normalised.to_sparse_csr()
            self.backward = normalised.t().coalesce().to_sparse_csr()
        self.shape = (n_dst, n_src)

    def __call__(self, x: Tensor) -> Tensor:
        return _SparseMean.apply(x, self)


class _SparseMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, adj: MeanAdjacency) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return torch.sparse.mm(adj.forward, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return torch.sparse.mm(ctx.adj.backward, grad.contiguous()), None


class MeanConv(nn.Module):
    """GraphSAGE (mean) for one relation: `W_l mean_{src->dst} x_src + W_r x_dst`, over a
    `MeanAdjacency` or, where sparse products do not run, an edge_index (PyG's scatter)."""

    def __init__(self, hidden: int, root: bool = True) -> None:
        super().__init__()
        self.lin_l = nn.Linear(hidden, hidden)
        # HeteroConv sums the relations into a node type: one root weight there is enough.
        self.lin_r = nn.Linear(hidden, hidden, bias=False) if root else None

    def forward(self, x: Tensor | tuple[Tensor, Tensor], adj: MeanAdjacency | Tensor) -> Tensor:
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        if isinstance(adj, MeanAdjacency):
            agg = adj(x_src)
        else:
            agg = scatter(x_src[adj[0]], adj[1], dim=0, dim_size=x_dst.shape[0], reduce="mean")
        out = self.lin_l(agg)
        return out if self.lin_r is None else out + self.lin_r(x_dst)


@dataclass
class ModelInputs:
    x: dict[str, Tensor]
    adj: dict[EdgeType, Any]  # edge_index (attention, or mean without sparse) or MeanAdjacency
    edge_attr: dict[EdgeType, Tensor]  # attention relations only


@functools.cache
def sparse_works(device: str) -> bool:
    """Whether sparse CSR @ dense runs on `device` (a tiny probe, once per device); where
    it does not, the mean relations fall back to PyG's edge_index scatter."""
    try:
        dev = torch.device(device)
        adj = torch.eye(3, device=dev).to_sparse_csr()
        return torch.sparse.mm(adj, torch.ones(3, 2, device=dev)).shape == (3, 2)
    except (RuntimeError, NotImplementedError):
        return False


def model_inputs(
    graph: HiCQAGraph,
    device: torch.device | str = "cpu",
    *,
    x_qa: Tensor | None = None,
    qa_edge_attr: dict[EdgeType, Tensor] | None = None,
    base: ModelInputs | None = None,
    sparse: bool | None = None,
    attention: bool = False,
) -> ModelInputs:
    """The graph's tensors on `device`; `x_qa` / `qa_edge_attr` replace the QA features and the
    QA relations' attributes (what-if scoring). `base` reuses already-moved tensors.
    `sparse`: mean relations as sparse CSR (default: where the device trains through it)."""
    device = torch.device(device)
    if sparse is None:
        sparse = sparse_works(str(device))
    data = graph.data
    if base is None:
        x = {t: data[t].x.to(device) for t in NODE_TYPES}
        adj: dict[EdgeType, Tensor] = {}
        edge_attr: dict[EdgeType, Tensor] = {}
        for rel in data.edge_types:
            edge_index = data[rel].edge_index
            if edge_index.shape[1] == 0:
                continue
            if uses_attention(rel, attention):
                adj[rel] = edge_index.to(device)
                edge_attr[rel] = data[rel].edge_attr.to(device)
            elif sparse:
                n_src, n_dst = data[rel[0]].num_nodes, data[rel[2]].num_nodes
                adj[rel] = MeanAdjacency(edge_index, n_src, n_dst, device)
            else:  # PyG's gather/scatter mean (more memory: one message per edge)
                adj[rel] = edge_index.to(device)
        base = ModelInputs(x, adj, edge_attr)
    if x_qa is None and not qa_edge_attr:
        return base
    x = dict(base.x)
    if x_qa is not None:
        x["qa"] = x_qa.to(device)
    edge_attr = dict(base.edge_attr)
    for rel, attr in (qa_edge_attr or {}).items():
        if rel in edge_attr:
            edge_attr[rel] = attr.to(device)
    return ModelInputs(x, base.adj, edge_attr)


class QASignalView:
    """The QA signal features of model inputs, on their device, to swap in other values:
    `with_signals(z, mask)` gives inputs whose QA features and QA-edge attributes carry the
    standardised values `z` and flags `mask` (N_qa_nodes, S) instead."""

    def __init__(self, graph: HiCQAGraph, inputs: ModelInputs) -> None:
        device = inputs.x["qa"].device
        self.inputs = inputs
        self.standardizer = graph.standardizer
        s = len(graph.signal_names)
        a = graph.qa_signal_offset
        self.cols = (a, a + s, a + 2 * s)
        x = inputs.x["qa"]
        self.z = x[:, a : a + s]
        self.mask = x[:, a + s : a + 2 * s]
        self.qa_index = {
            rel: graph.data[rel].edge_index[side].to(device)
            for rel, side in QA_RELATIONS.items()
            if rel in inputs.edge_attr
        }

    def standardise(self, j: int, value: float) -> float:
        return float((value - self.standardizer.mean[j]) / self.standardizer.std[j])

    def with_signals(self, z: Tensor, mask: Tensor) -> ModelInputs:
        x = self.inputs.x["qa"]
        a, _, c = self.cols
        x_qa = torch.cat([x[:, :a], z, mask, x[:, c:]], dim=1)
        sig = torch.cat([z, mask], dim=1)
        edge_attr = dict(self.inputs.edge_attr)
        for rel, index in self.qa_index.items():
            attr = sig[index]
            edge_attr[rel] = torch.cat([attr, torch.ones_like(attr[:, :1])], dim=1)
        return ModelInputs({**self.inputs.x, "qa": x_qa}, self.inputs.adj, edge_attr)


class SignalDropout(QASignalView):
    """Training-time augmentation: each available signal of each QA is hidden (as if
    unavailable) with probability `p`, in the QA's features and on its edges alike.

    The weak labels are functions of the signals; hiding some of them while keeping the label
    makes the model predict the label from the rest of the evidence (the other signals, the
    neighbourhood) instead of re-learning the labelling functions' thresholds.
    """

    def __init__(self, graph: HiCQAGraph, inputs: ModelInputs, p: float) -> None:
        super().__init__(graph, inputs)
        self.p = p

    def __call__(self, generator: torch.Generator | None = None) -> ModelInputs:
        if self.p <= 0 or self.z.shape[1] == 0:
            return self.inputs
        keep = torch.rand(self.mask.shape, device=self.mask.device, generator=generator) >= self.p
        mask = self.mask * keep
        return self.with_signals(self.z * mask, mask)


class HiCQAGNN(nn.Module):
    def __init__(
        self,
        in_dims: dict[str, int],
        relations: list[EdgeType],
        edge_dims: dict[EdgeType, int],
        *,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.1,
        wide: tuple[int, int] | None = None,
        attention: bool = False,
    ) -> None:
        super().__init__()
        if hidden % heads:
            heads = 1
        self.config: dict[str, Any] = {
            "wide": list(wide) if wide else None,
            "attention": attention,
            "in_dims": dict(in_dims),
            "relations": [list(r) for r in relations],
            "edge_dims": {"__".join(r): d for r, d in edge_dims.items()},
            "hidden": hidden,
            "layers": layers,
            "heads": heads,
            "dropout": dropout,
        }
        self.relations = [tuple(r) for r in relations]
        self.attention = attention
        self.proj = nn.ModuleDict(
            {t: nn.Sequential(nn.Linear(d, hidden), nn.ReLU()) for t, d in in_dims.items()}
        )
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(layers):
            convs: dict[EdgeType, nn.Module] = {}
            rooted: set[str] = set()
            for rel in self.relations:
                if uses_attention(rel, attention):
                    convs[rel] = GATv2Conv(
                        (hidden, hidden),
                        hidden // heads,
                        heads=heads,
                        edge_dim=edge_dims[rel],
                        add_self_loops=False,
                    )
                else:  # mean over a MeanAdjacency (or an edge_index, see model_inputs)
                    convs[rel] = MeanConv(hidden, root=rel[2] not in rooted)
                    rooted.add(rel[2])
            self.convs.append(HeteroConv(convs, aggr="sum"))
            self.norms.append(nn.ModuleDict({t: nn.LayerNorm(hidden) for t in in_dims}))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        # A linear path from the QA's own signal features straight to the logit ("wide and
        # deep"): the graph part learns what the neighbourhood adds on top of it.
        self.wide_cols = tuple(wide) if wide else None
        self.wide = nn.Linear(wide[1] - wide[0], 1) if wide else None
        if self.wide is not None:  # start as the linear model; the graph part grows from zero
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    @classmethod
    def for_graph(cls, graph: HiCQAGraph, **kwargs: Any) -> HiCQAGNN:
        data = graph.data
        relations = [r for r in data.edge_types if data[r].edge_index.shape[1] > 0]
        attention = bool(kwargs.get("attention", False))
        edge_dims = {
            r: int(data[r].edge_attr.shape[1]) for r in relations if uses_attention(r, attention)
        }
        in_dims = {t: int(data[t].x.shape[1]) for t in NODE_TYPES}
        # context (`context.neighbourhood_features`) + own signal features
        wide = (graph.qa_signal_offset - graph.context_width, in_dims["qa"])
        return cls(in_dims, relations, edge_dims, wide=wide, **kwargs)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HiCQAGNN:
        relations = [tuple(r) for r in config["relations"]]
        edge_dims = {tuple(k.split("__")): v for k, v in config["edge_dims"].items()}
        return cls(
            config["in_dims"],
            relations,
            edge_dims,
            hidden=config["hidden"],
            layers=config["layers"],
            heads=config["heads"],
            dropout=config["dropout"],
            wide=tuple(config["wide"]) if config.get("wide") else None,
            attention=config.get("attention", True),  # models saved before the option had it
        )

    def forward(self, inputs: ModelInputs) -> Tensor:
        """Logits of every QA node (apply a sigmoid for the consistency score)."""
        h = {t: self.dropout(self.proj[t](x)) for t, x in inputs.x.items()}
        adj = {r: inputs.adj[r] for r in self.relations}
        edge_attr = {r: a for r, a in inputs.edge_attr.items() if r in adj}
        for conv, norms in zip(self.convs, self.norms, strict=True):
            out = conv(h, adj, edge_attr_dict=edge_attr)
            h = {
                t: norms[t](v + self.dropout(torch.relu(out[t]))) if t in out else v
                for t, v in h.items()
            }
        logits = self.head(h["qa"]).squeeze(-1)
        if self.wide is not None:
            a, b = self.wide_cols
            logits = logits + self.wide(inputs.x["qa"][:, a:b]).squeeze(-1)
        return logits
