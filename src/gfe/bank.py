"""A latent bank: a trained GFE decoder plus a memory of the codes of images it has encoded.

Beyond the papers. GFE has no encoder network: every image is encoded by descending the
decoder's loss from a starting point z0. A bank encodes a set of images (e.g. training
images) once, keeps their codes, and starts a new image from the code of its nearest stored
image (pixel L2 distance) instead of from a random z0. The encoder network that GFE removes
stays removed: the bank is data (images, their codes and one d x d matrix computed from the
decoder at those codes), not trained parameters, and every code it hands out is still
refined by the decoder's own descent.

Two ways to use it:

* `bank.initial(x)` is a (B, d) z0 for `gfe.encode(decoder, x, z0=bank.initial(x), ...)`
  (or `gfe.evaluation.evaluate(..., encode_options={"z0": bank.initial(x), ...},
  batch_size=len(x))`: evaluate passes a tensor z0 to every batch whole, so one batch).
* `bank.encode(x, **encode_options)` also starts there, and descends in the bank's whitened
  coordinates z = u W^T: W = (H + damping * max eig(H) I)^(-1/2), H the mean Hessian of
  the per-sample loss w.r.t. z at some of the stored codes. The loss is the same function of
  z; only the coordinates of the descent change, which matters for methods that start from
  the identity metric (L-BFGS's first steps, AMD's step sizes): on a trained decoder the
  Hessian's eigenvalues span five to six orders of magnitude.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch
from torch import nn

from .encoding import Encoding, check_images, encode, eval_mode, latent_dim_of
from .evaluation import evaluate
from .losses import resolve_loss
from .models import MLPDecoder

BUILD_OPTIONS = {"solver": "lbfgs_dense", "z0": "uniform", "tol": 1e-6}  # the default encode_options of a bank
RERANK = 4  # candidates of the float32 distance re-ranked exactly (float64) by `nearest`
CHUNK_ELEMENTS = 2**24  # at most this many query x bank distances at once (64 MiB of float32)


class LatentBank:
    """Images encoded once, their codes kept, handed out as starting points for new images.

    Args:
        decoder: the trained decoder (any nn.Module `gfe.encode` takes); the bank belongs
            to it as it is now: retrain it, and build the bank again.
        images: (M, *image shape) or flattened (M, prod(image shape)) images, M >= 1, with
            the decoder's dtype and device (as `gfe.encode` takes them).
        encode_options: `gfe.encode` options the bank's images are encoded with, also the
            defaults of `bank.encode` (without z0); default `BUILD_OPTIONS` (dense L-BFGS,
            tol 1e-6, z0 uniform). A tensor z0 is refused.
        batch_size: images encoded at once while building.
        seed: the seed of z0='uniform' (image m starts from the draw of (seed, m)).
        curvature_images: stored codes (evenly spaced) whose Hessians are averaged into H.
        damping: the whitening's floor, relative to H's largest eigenvalue (> 0).

    Attributes:
        images (M, *image shape), codes (M, d), loss (M,) and nfe (M,) of the build's
        encoding; curvature H (d, d) and whitening W (d, d) (float64); build_seconds (the
        encoding and the curvature, wall clock).
    """

    def __init__(
        self,
        decoder: nn.Module,
        images: torch.Tensor,
        encode_options: dict | None = None,
        *,
        batch_size: int = 500,
        seed: int = 0,
        curvature_images: int = 256,
        damping: float = 1e-3,
    ):
        options = dict(BUILD_OPTIONS if encode_options is None else encode_options)
        _check_build(images, options, curvature_images, damping)
        started = time.perf_counter()
        self.decoder = decoder
        self.encode_options = options
        latent_dim = latent_dim_of(decoder, None, options.get("latent_dim"))
        self.images = check_images(decoder, images, options.get("loss"), latent_dim=latent_dim)
        built = evaluate(decoder, self.images, encode_options=options, batch_size=batch_size, seed=seed)
        self.codes, self.loss, self.nfe = built.z.detach(), built.loss, built.nfe
        self._flat = self.images.reshape(len(self.images), -1)
        self._norms = self._flat.square().sum(1)
        _, loss_fn = resolve_loss(options.get("loss"), decoder)
        picks = torch.linspace(0, len(self) - 1, min(curvature_images, len(self))).round().long().unique()
        self.curvature = mean_hessian(decoder, self.codes[picks], self.images[picks], loss_fn)
        self.whitening = whitening_matrix(self.curvature, damping)
        self.build_seconds = time.perf_counter() - started

    def __len__(self) -> int:
        return len(self.codes)

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index (B,) int64 of each image's nearest stored image: the smallest pixel L2
        distance (ties: the lowest index). Batched: one matrix product per chunk of queries
        gives float32 distances, and the `RERANK` closest are compared exactly in float64.

        Args:
            x: (B, *image shape) or flattened images, as `gfe.encode` takes them (B may be 0).
        """
        flat = self._check(x).reshape(len(x), self._flat.shape[1])
        rows = max(1, CHUNK_ELEMENTS // len(self))
        parts = [self._nearest_chunk(flat[i : i + rows]) for i in range(0, len(flat), rows)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64, device=flat.device)

    def _nearest_chunk(self, flat: torch.Tensor) -> torch.Tensor:
        approx = torch.addmm(self._norms, flat, self._flat.T, alpha=-2)  # |b|^2 - 2 x.b
        candidates = approx.topk(min(RERANK, len(self)), dim=1, largest=False).indices.sort(1).values
        exact = (self._flat[candidates].double() - flat[:, None].double()).square().sum(2)
        return candidates.gather(1, exact.argmin(1, keepdim=True)).squeeze(1)

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        """z0 (B, d) for the images x: the codes of their nearest stored images (`nearest`),
        in the decoder's dtype and on its device."""
        return self.codes[self.nearest(x)]

    def encode(self, x: torch.Tensor, **encode_options) -> Encoding:
        """Encode x by `gfe.encode` from `initial(x)`, descending in the whitened coordinates
        z = u W^T (see the module). The options default to the bank's own (without z0).

        Args:
            x: (B, *image shape) or flattened images.
            **encode_options: `gfe.encode` options (solver, tol, max_evals, ...), not z0.

        Returns:
            Encoding: as `gfe.encode`, z (B, d) in the decoder's coordinates; loss, nfe, ...
            of the descent (the lookup costs no decoder evaluation).
        """
        if "z0" in encode_options:
            raise ValueError("bank.encode starts from the bank's codes: drop z0, or call gfe.encode(z0=...)")
        options = {k: v for k, v in {**self.encode_options, **encode_options}.items() if k != "z0"}
        x = self._check(x)
        whitening = self.whitening.to(dtype=x.dtype, device=x.device)
        u0 = torch.linalg.solve(self.whitening.to(x.device), self.initial(x).double().T).T.to(x.dtype)
        out = encode(self._whitened_decoder(whitening), x, z0=u0, **options)
        return dataclasses.replace(out, z=out.z @ whitening.T)

    def _whitened_decoder(self, whitening: torch.Tensor) -> nn.Module:
        """`whitened_decoder`, kept while the decoder's tensors are the same objects at the same
        versions (an in-place update, e.g. an optimiser step, makes a new one)."""
        key = [(id(t), t._version) for t in self.decoder.state_dict(keep_vars=True).values()]
        key.append((id(self.whitening), self.whitening._version, whitening.dtype, whitening.device))
        if getattr(self, "_whitened", (None,))[0] != key:
            self._whitened = (key, whitened_decoder(self.decoder, whitening))
        return self._whitened[1]

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.ndim >= 1 and x.numel() and x[0].numel() != self._flat.shape[1]:
            shape = tuple(self.images.shape[1:])
            raise ValueError(
                f"x has images of shape {tuple(x.shape[1:])}; this bank stores images of shape {shape}: "
                "pass images of that shape (or build a bank of these)"
            )
        return check_images(self.decoder, x, self.encode_options.get("loss"), latent_dim=self.codes.shape[1])


def _check_build(images, options: dict, curvature_images, damping) -> None:
    if isinstance(images, torch.Tensor) and images.ndim >= 1 and len(images) == 0:
        raise ValueError("images is empty: a LatentBank needs at least one image to store")
    if isinstance(options.get("z0"), torch.Tensor):
        raise ValueError("encode_options z0 is a tensor; a bank draws its own: use z0='uniform' or 'zeros'")
    if isinstance(curvature_images, bool) or not isinstance(curvature_images, int) or curvature_images < 1:
        raise ValueError(f"curvature_images={curvature_images!r} is invalid: must be an integer >= 1")
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not 0 < damping < float("inf"):
        raise ValueError(f"damping={damping!r} is invalid: must be a finite number > 0 (e.g. 1e-3)")


def mean_hessian(decoder: nn.Module, z: torch.Tensor, x: torch.Tensor, loss_fn) -> torch.Tensor:
    """The mean over samples of the Hessian of the per-sample loss w.r.t. z: (d, d) float64,
    symmetrised, on the CPU. z (S, d) codes, x (S, *image shape) their images; d double-backward
    passes."""
    with torch.enable_grad(), eval_mode(decoder):
        z = z.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(decoder(z), x).sum(), z, create_graph=True)
        rows = [torch.autograd.grad(grad[:, j].sum(), z, retain_graph=True)[0] for j in range(z.shape[1])]
    hessian = torch.stack(rows, 1).double().mean(0).cpu()
    return (hessian + hessian.T) / 2


def whitening_matrix(curvature: torch.Tensor, damping: float) -> torch.Tensor:
    """W = (H+ + damping * max eig(H) I)^(-1/2) (d, d) float64, H+ the curvature with its
    negative eigenvalues set to 0; the identity when H has no positive eigenvalue."""
    values, vectors = torch.linalg.eigh(curvature.double())
    values = values.clamp_min(0)
    top = float(values.max())
    if not top > 0:
        return torch.eye(len(values), dtype=torch.float64)
    return (vectors * (values + damping * top).rsqrt()) @ vectors.T


class WhitenedDecoder(nn.Module):
    """decoder(u W^T): the same decoder in coordinates u with z = u W^T."""

    def __init__(self, decoder: nn.Module, whitening: torch.Tensor):
        super().__init__()
        self.decoder = decoder
        self.register_buffer("whitening", whitening)
        self.latent_dim = whitening.shape[0]
        for name in ("image_shape", "output"):
            if hasattr(decoder, name):
                setattr(self, name, getattr(decoder, name))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.decoder(u @ self.whitening.T)


def whitened_decoder(decoder: nn.Module, whitening: torch.Tensor) -> nn.Module:
    """The decoder in the coordinates u, z = u W^T: for an `MLPDecoder` a copy with W folded
    into its first layer (an MLPDecoder still, so `gfe.fastpass` applies), else a
    `WhitenedDecoder` around it."""
    if type(decoder) is not MLPDecoder or type(decoder.net[0]) is not nn.Linear:
        return WhitenedDecoder(decoder, whitening)
    folded = copy.deepcopy(decoder)
    with torch.no_grad():
        folded.net[0].weight.copy_(decoder.net[0].weight @ whitening)
    return folded
