"""Decoder, encoder and autoencoder architectures (SPEC §2).

Two families:

* 28×28 grey-scale data (MNIST, Fashion-MNIST): fully connected ELU networks.
  The decoder returns *logits*; the images are ``sigmoid(logits)``.
* CIFAR-10 (3×32×32): residual convolutional networks. The decoder ends in a
  sigmoid and returns *probabilities* (pixel values in (0, 1)).

Every module keeps samples independent (no batch norm or other batch
statistics): the output for one sample never depends on its batch mates, which
the gradient-flow encoders rely on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

MNIST_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)

OUTPUT_KINDS = ("logits", "probabilities")


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(nn.ELU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class MLPDecoder(nn.Module):
    """Fully connected decoder for 28×28 data: latent (B, d) -> logits (B, *image_shape)."""

    output = "logits"

    def __init__(
        self,
        latent_dim: int = 20,
        image_shape: Sequence[int] = MNIST_SHAPE,
        hidden: Sequence[int] = (150, 300, 600),
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.net = _mlp([self.latent_dim, *hidden, _prod(self.image_shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(z.shape[0], *self.image_shape)


class MLPEncoder(nn.Module):
    """Fully connected encoder, the mirror of :class:`MLPDecoder`: (B, *image_shape) -> (B, d)."""

    def __init__(
        self,
        latent_dim: int = 20,
        image_shape: Sequence[int] = MNIST_SHAPE,
        hidden: Sequence[int] = (600, 300, 150),
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.net = _mlp([_prod(self.image_shape), *hidden, self.latent_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1))


def _conv3(n_in: int, n_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, kernel_size=3, stride=stride, padding=1)


class ResUpBlock(nn.Module):
    """Nearest ×2 up-sampling, two 3×3 convs, and a skip path (1×1 conv if channels change)."""

    def __init__(self, n_in: int, n_out: int, slope: float = 0.2):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = _conv3(n_in, n_out)
        self.conv2 = _conv3(n_out, n_out)
        self.skip = nn.Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        h = self.conv2(self.act(self.conv1(x)))
        return self.act(h + self.skip(x))


class ResDownBlock(nn.Module):
    """Stride-2 3×3 conv, a 3×3 conv, and a strided skip path (1×1 conv if channels change)."""

    def __init__(self, n_in: int, n_out: int, slope: float = 0.2):
        super().__init__()
        self.conv1 = _conv3(n_in, n_out, stride=2)
        self.conv2 = _conv3(n_out, n_out)
        if n_in != n_out:
            self.skip = nn.Conv2d(n_in, n_out, 1, stride=2)
        else:
            self.skip = nn.AvgPool2d(2)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.act(self.conv1(x)))
        return self.act(h + self.skip(x))


class ConvDecoder(nn.Module):
    """Residual up-sampling decoder for 3×32×32 data: (B, d) -> probabilities (B, 3, 32, 32).

    fc to 256×4×4, ResUp 256→128 (8×8), ResUp 128→64 (16×16), ×2 up + conv 64→64
    (32×32), conv 64→3, sigmoid.
    """

    output = "probabilities"

    def __init__(
        self,
        latent_dim: int = 64,
        image_shape: Sequence[int] = CIFAR_SHAPE,
        channels: Sequence[int] = (256, 128, 64),
        slope: float = 0.2,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        c_img, h, w = self.image_shape
        n_up = len(channels)  # residual up-blocks plus the final up-sampled conv
        if h % 2**n_up or w % 2**n_up:
            raise ValueError(f"image size {h}×{w} is not divisible by {2**n_up}")
        self.base = (channels[0], h // 2**n_up, w // 2**n_up)
        self.fc = nn.Linear(self.latent_dim, _prod(self.base))
        self.blocks = nn.Sequential(
            *(ResUpBlock(a, b, slope) for a, b in zip(channels[:-1], channels[1:]))
        )
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv3(channels[-1], channels[-1]),
            nn.LeakyReLU(slope),
            _conv3(channels[-1], c_img),
            nn.Sigmoid(),
        )
        self.act = nn.LeakyReLU(slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(z)).reshape(z.shape[0], *self.base)
        return self.head(self.blocks(h))


class ConvEncoder(nn.Module):
    """Mirror of :class:`ConvDecoder`: (B, 3, 32, 32) -> (B, d).

    conv 3→64, stride-2 conv 64→64 (16×16), ResDown 64→128 (8×8),
    ResDown 128→256 (4×4), Linear to latent_dim.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        image_shape: Sequence[int] = CIFAR_SHAPE,
        channels: Sequence[int] = (64, 128, 256),
        slope: float = 0.2,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        c_img, h, w = self.image_shape
        n_down = len(channels)
        if h % 2**n_down or w % 2**n_down:
            raise ValueError(f"image size {h}×{w} is not divisible by {2**n_down}")
        self.stem = nn.Sequential(
            _conv3(c_img, channels[0]),
            nn.LeakyReLU(slope),
            _conv3(channels[0], channels[0], stride=2),
            nn.LeakyReLU(slope),
        )
        self.blocks = nn.Sequential(
            *(ResDownBlock(a, b, slope) for a, b in zip(channels[:-1], channels[1:]))
        )
        self.fc = nn.Linear(channels[-1] * (h // 2**n_down) * (w // 2**n_down), self.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        return self.fc(h.reshape(x.shape[0], -1))


class Autoencoder(nn.Module):
    """Encoder followed by decoder; ``forward`` returns the decoder's output (logits or probabilities)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        if encoder.latent_dim != decoder.latent_dim:
            raise ValueError(
                f"encoder latent_dim {encoder.latent_dim} != decoder latent_dim {decoder.latent_dim}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = decoder.latent_dim
        self.image_shape = decoder.image_shape
        self.output = decoder.output

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


_FAMILIES = {
    MNIST_SHAPE: (MLPEncoder, MLPDecoder),
    CIFAR_SHAPE: (ConvEncoder, ConvDecoder),
}


def _family(image_shape: Sequence[int]):
    key = tuple(int(s) for s in image_shape)
    if key not in _FAMILIES:
        known = ", ".join(str(k) for k in _FAMILIES)
        raise ValueError(f"no architecture for image shape {key}; known shapes: {known}")
    return _FAMILIES[key]


def build_decoder(image_shape: Sequence[int], latent_dim: int) -> nn.Module:
    """The decoder for this image shape: MLP for (1, 28, 28), conv for (3, 32, 32)."""
    return _family(image_shape)[1](latent_dim=latent_dim, image_shape=tuple(image_shape))


def build_encoder(image_shape: Sequence[int], latent_dim: int) -> nn.Module:
    """The AE encoder for this image shape: MLP for (1, 28, 28), conv for (3, 32, 32)."""
    return _family(image_shape)[0](latent_dim=latent_dim, image_shape=tuple(image_shape))


def build_autoencoder(image_shape: Sequence[int], latent_dim: int) -> Autoencoder:
    """Encoder and decoder of the matching family, joined."""
    return Autoencoder(
        build_encoder(image_shape, latent_dim), build_decoder(image_shape, latent_dim)
    )


def to_images(decoder_output: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Images in [0, 1] from a decoder's output: sigmoid of logits, probabilities unchanged."""
    if output_kind == "logits":
        return torch.sigmoid(decoder_output)
    if output_kind == "probabilities":
        return decoder_output
    raise ValueError(f"unknown output kind {output_kind!r}; expected one of {OUTPUT_KINDS}")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
