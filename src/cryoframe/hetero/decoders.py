"""Autodecoders: per-image latent table → displacements of the C-alpha template.

* :class:`GCNDecoder` — supplement Table 1 (AdK): a linear embedding of the latent (d = 8) to
  ``n_res × C`` node features ``X⁽⁰⁾``, ``K`` GCNConv layers (Kipf & Welling, torch-geometric)
  with skip connections and ReLU, node-wise linear output of 3D displacements. K = 16, C = 16
  gives ≈35k weights for 214 residues.
* :class:`MLPDecoder` — ``H`` fully connected hidden layers of width ``D`` with ReLU and a linear
  output of all ``3·n_res`` displacements; H = 8, D = 32 gives ≈29k weights for 214 residues.

Conditioning (the paper does not specify initialisation or output units; these are our choices,
the same for both decoders where they apply):

* the embedding is linear (the main text: "a linear layer mapping a latent variable z to a set of
  node features X⁽⁰⁾"); a ReLU there left about half of every residue's channels dead at
  initialisation (the node biases dominate ``E z`` for latents of std 0.1);
* each residual branch has a learned scalar gain that starts at zero (ReZero, Bachlechner et al.
  2020): ``X ← X + α_k · ReLU(GCN_k(X))``. With ``α_k = 1`` the non-negative branches pile up and
  the node features grow ≈270× through the 16 layers at initialisation, so the node-wise output
  layer sees inputs of magnitude ~100 and every Adam step moves all displacements at once;
* both decoders output displacements in units of ``displacement_unit_angstrom`` (10 Å, i.e. nm),
  so O(1) features map to domain-motion-sized displacements;
* both start exactly at the template. The MLP's output layer starts at zero (its per-coordinate
  bias moves every residue from the first step). The GCN's node-wise output layer is shared by all
  residues, so a zero output layer would leave the embedding without gradient until it grew (a
  product saddle: the GCN stood still for ~6 epochs); instead the embedding starts at zero
  (``X⁽⁰⁾ = 0``, hence ``X⁽ᴷ⁾ = 0``) and the output layer keeps its random weights (zero bias),
  so every residue's embedding gets a gradient at the first step.

Both return ``x0 + Δ`` in Å (zyx). :class:`LatentTable` holds one learnable ``d``-vector per image.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cryoframe._errors import InputError

__all__ = ["LatentTable", "GCNDecoder", "MLPDecoder", "count_weights", "make_decoder",
           "load_decoder_state"]

#: Output unit of both decoders' displacements (Å): they predict Δ in nm.
DISPLACEMENT_UNIT_ANGSTROM = 10.0


def count_weights(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class LatentTable(nn.Module):
    """Index → latent lookup (an embedding table, initialised N(0, init_std²)).

    Parameters
    ----------
    n_images : int
        Number of images.
    latent_dim : int
        Dimension d of each latent.
    init_std : float
        Standard deviation of the random initialisation.
    """

    def __init__(self, n_images: int, latent_dim: int = 8, init_std: float = 0.1) -> None:
        super().__init__()
        self.table = nn.Embedding(n_images, latent_dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def forward(self, index: Tensor) -> Tensor:
        """`(b,)` image indices → `(b, d)` latents."""
        return self.table(index)


class GCNDecoder(nn.Module):
    """Graph-convolutional autodecoder on the backbone graph.

    Parameters
    ----------
    template_zyx_angstrom : Tensor
        `(n_res, 3)` template C-alpha coordinates x0.
    edge_index : Tensor
        `(2, n_edges)` backbone graph (both directions).
    latent_dim : int
        d.
    channels : int
        C, node feature width.
    n_layers : int
        K, number of GCNConv layers.
    displacement_unit_angstrom : float
        Length of one output unit (Å).
    """

    def __init__(self, template_zyx_angstrom, edge_index: Tensor, latent_dim: int = 8,
                 channels: int = 16, n_layers: int = 16,
                 displacement_unit_angstrom: float = DISPLACEMENT_UNIT_ANGSTROM) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        x0 = torch.as_tensor(template_zyx_angstrom, dtype=torch.float32)
        self.register_buffer("template", x0)
        self.register_buffer("edge_index", torch.as_tensor(edge_index, dtype=torch.long))
        self.n_res, self.channels = int(x0.shape[0]), int(channels)
        self.unit = float(displacement_unit_angstrom)
        self.embed = nn.Linear(latent_dim, self.n_res * channels)
        self.convs = nn.ModuleList(
            [GCNConv(channels, channels, cached=True, node_dim=-2) for _ in range(n_layers)])
        self.gain = nn.Parameter(torch.zeros(n_layers))  # ReZero: residual branches start off
        self.out = nn.Linear(channels, 3)  # default (random) weights, zero bias
        nn.init.zeros_(self.out.bias)
        nn.init.zeros_(self.embed.weight)  # X⁽⁰⁾ = 0: start at the template
        nn.init.zeros_(self.embed.bias)
        self._adjacency: Tensor | None = None

    def adjacency(self) -> Tensor:
        """`(n_res, n_res)` sparse ``D^{-1/2}(A + I)D^{-1/2}``, GCNConv's own normalisation."""
        if self._adjacency is None or self._adjacency.device != self.template.device:
            from torch_geometric.nn.conv.gcn_conv import gcn_norm

            ei, w = gcn_norm(self.edge_index, None, self.n_res, add_self_loops=True)
            self._adjacency = torch.sparse_coo_tensor(
                torch.stack([ei[1], ei[0]]), w, (self.n_res, self.n_res),
                check_invariants=True).coalesce()  # row = target node, col = source node
        return self._adjacency

    def node_features(self, z: Tensor, pyg_propagate: bool = False) -> list[Tensor]:
        """`(b, d)` latents → ``[X⁽⁰⁾, …, X⁽ᴷ⁾]``, each `(b, n_res, C)`.

        Each layer is ``X ← X + α_k · ReLU(Â X W + b)`` with GCNConv's weights ``W``, ``b``. By
        default the propagation ``Â (X W)`` is one sparse matmul over the whole batch (≈4× faster
        on a CPU than GCNConv's scatter over a batched static graph); ``pyg_propagate=True``
        calls the GCNConv modules themselves (identical result, tested).
        """
        b = z.shape[0]
        h = self.embed(z).reshape(b, self.n_res, self.channels)
        feats = [h]
        if pyg_propagate:
            for gain, conv in zip(self.gain, self.convs):
                h = h + gain * torch.relu(conv(h, self.edge_index))  # static graph
                feats.append(h)
            return feats
        adj = self.adjacency()
        h = h.transpose(0, 1)  # (n_res, b, C)
        for gain, conv in zip(self.gain, self.convs):
            hw = conv.lin(h).reshape(self.n_res, b * self.channels)
            msg = torch.sparse.mm(adj, hw).reshape(self.n_res, b, self.channels)
            h = h + gain * torch.relu(msg + conv.bias)
            feats.append(h.transpose(0, 1))
        return feats

    def displacements(self, z: Tensor, pyg_propagate: bool = False) -> Tensor:
        """`(b, d)` latents → `(b, n_res, 3)` displacements Δ (Å)."""
        return self.unit * self.out(self.node_features(z, pyg_propagate)[-1])

    def forward(self, z: Tensor) -> Tensor:
        """`(b, d)` latents → `(b, n_res, 3)` conformations x0 + Δ (Å, zyx)."""
        if z.ndim != 2:
            raise ValueError(f"latents must be (b, d), got {tuple(z.shape)}")
        return self.template[None] + self.displacements(z)


class MLPDecoder(nn.Module):
    """Fully connected autodecoder of comparable size (supplement Table 1).

    Parameters
    ----------
    template_zyx_angstrom : Tensor
        `(n_res, 3)` template x0.
    latent_dim : int
        d.
    hidden : int
        D, hidden width.
    n_hidden : int
        H, number of hidden layers.
    displacement_unit_angstrom : float
        Length of one output unit (Å).
    """

    def __init__(self, template_zyx_angstrom, latent_dim: int = 8, hidden: int = 32,
                 n_hidden: int = 8,
                 displacement_unit_angstrom: float = DISPLACEMENT_UNIT_ANGSTROM) -> None:
        super().__init__()
        x0 = torch.as_tensor(template_zyx_angstrom, dtype=torch.float32)
        self.register_buffer("template", x0)
        self.n_res = int(x0.shape[0])
        self.unit = float(displacement_unit_angstrom)
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, 3 * self.n_res)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def displacements(self, z: Tensor) -> Tensor:
        """`(b, d)` latents → `(b, n_res, 3)` displacements Δ (Å)."""
        return self.unit * self.out(self.body(z)).reshape(-1, self.n_res, 3)

    def forward(self, z: Tensor) -> Tensor:
        """`(b, d)` latents → `(b, n_res, 3)` conformations x0 + Δ (Å, zyx)."""
        if z.ndim != 2:
            raise ValueError(f"latents must be (b, d), got {tuple(z.shape)}")
        return self.template[None] + self.displacements(z)


def make_decoder(kind: str, template_zyx_angstrom, edge_index: Tensor | None = None,
                 latent_dim: int = 8) -> nn.Module:
    """Build ``"gnn"`` (K=16, C=16) or ``"mlp"`` (H=8, D=32), the paper's AdK sizes."""
    if kind == "gnn":
        if edge_index is None:
            raise InputError("the GNN decoder needs the backbone graph", field="edge_index")
        return GCNDecoder(template_zyx_angstrom, edge_index, latent_dim)
    if kind == "mlp":
        return MLPDecoder(template_zyx_angstrom, latent_dim)
    raise InputError(f"unknown decoder '{kind}'", field="decoder", expected="'gnn' or 'mlp'")


def load_decoder_state(decoder: nn.Module, state: dict, path) -> None:
    """Load a checkpoint's decoder weights, or raise :class:`InputError` naming the file.

    Checkpoints written before the GCN's residual gains existed (cryoframe 0.1.0 development
    builds) do not match the current layout and must be retrained.
    """
    from cryoframe._errors import InputError

    try:
        decoder.load_state_dict(state["decoder"])
    except (RuntimeError, KeyError) as exc:
        raise InputError(f"decoder weights do not match this version ({str(exc)[:120]})",
                         file=path, field="decoder",
                         expected=f"a {type(decoder).__name__} checkpoint written by this "
                                  "cryoframe version (retrain with 'cryoframe hetero train')"
                         ) from None

