"""Small decoders with known structure, shared by the solver and gradient tests."""

import torch
from torch import nn


class TinyDecoder(nn.Module):
    """A 2-layer ELU MLP with the attributes gfe expects of a decoder."""

    def __init__(self, latent_dim=3, pixels=12, output="logits"):
        super().__init__()
        self.latent_dim, self.output = latent_dim, output
        self.net = nn.Sequential(nn.Linear(latent_dim, 8), nn.ELU(), nn.Linear(8, pixels))

    def forward(self, z):
        out = self.net(z)
        return torch.sigmoid(out) if self.output == "probabilities" else out


class FunctionDecoder(nn.Module):
    """D(z) = fn(z) with no parameters, for problems solved by hand."""

    def __init__(self, fn, latent_dim=1, output="probabilities"):
        super().__init__()
        self.fn, self.latent_dim, self.output = fn, latent_dim, output

    def forward(self, z):
        return self.fn(z)


class LinearDecoder(nn.Module):
    """D(z) = W z + b: with the MSE loss the flow is a convex quadratic problem."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)
        self.latent_dim, self.output = weight.shape[1], "probabilities"

    def forward(self, z):
        return z @ self.weight.T + self.bias
