"""Gradient-flow encoding (GFE): encode by integrating the gradient flow of a decoder.

Main entry points: `gfe.encode` (latent codes by AMD, rk4, euler or dopri5, first- or
second-order flow) and `gfe.decoder_gradient` (training gradients: approximate, full
adjoint, or back-propagation through the solver).
"""

from .encoding import Encoding, check_encode_options, check_images, encode, initial_latents
from .gradients import (DecoderGradient, check_gradient_options, decoder_gradient,
                        decoder_loss_and_gradient)
from .solvers import FlowDivergedError

__all__ = ["DecoderGradient", "Encoding", "FlowDivergedError", "check_encode_options", "check_gradient_options",
           "check_images", "decoder_gradient", "decoder_loss_and_gradient", "encode", "initial_latents"]
