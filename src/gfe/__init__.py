"""Gradient-flow encoding (GFE): encode by integrating the gradient flow of a decoder.

Main entry points: `gfe.encode` (latent codes by AMD, rk4, euler or dopri5, first- or
second-order flow; `lbfgs` and `lbfgs_dense`, beyond the papers) and `gfe.decoder_gradient` (training
gradients: approximate, full adjoint, or back-propagation through the solver). The
papers' networks are in `gfe.models`, the training loop in `gfe.training.train`, held-out
evaluation in `gfe.evaluation.evaluate`, several runs trained at once (each as alone) in
`gfe.lockstep.train_lockstep`, starting points from a memory of encoded images in
`gfe.LatentBank` (beyond the papers), the files (atomic writes, model and prepared-data
formats) in `gfe.io`; any `nn.Module` mapping (B, d) latents to images works as a decoder
(pass `latent_dim=d` or a (B, d) tensor z0 when it has no `latent_dim` attribute).
"""

from importlib import metadata as _metadata

from . import evaluation, io, lockstep, models, training
from .bank import LatentBank
from .encoding import Encoding, check_encode_options, check_images, encode, initial_latents
from .gradients import DecoderGradient, check_gradient_options, decoder_gradient, decoder_loss_and_gradient
from .solvers import FlowDivergedError

try:
    __version__ = _metadata.version("gfe")
except _metadata.PackageNotFoundError:  # run from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "DecoderGradient",
    "Encoding",
    "FlowDivergedError",
    "LatentBank",
    "__version__",
    "check_encode_options",
    "check_gradient_options",
    "check_images",
    "decoder_gradient",
    "decoder_loss_and_gradient",
    "encode",
    "evaluation",
    "initial_latents",
    "io",
    "lockstep",
    "models",
    "training",
]
