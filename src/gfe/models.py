"""Decoder, encoder and autoencoder architectures of the gradient-flow encoding papers.

Two families:

* 28×28 grey-scale data (MNIST, Fashion-MNIST): fully connected ELU networks.
  The decoder returns *logits*; the images are ``sigmoid(logits)``.
* CIFAR-10 (3×32×32): residual convolutional networks built as in the
  authors' code (see :class:`ConvDecoder`), with an encoder that mirrors the
  decoder. The decoder ends in a sigmoid and returns *probabilities* (pixel
  values in (0, 1)).

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
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
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
    """Residual up-sampling block: (B, n_in, H, W) -> (B, n_out, 2H, 2W).

    The sum of two branches, as in the authors' code:

    * main: conv3×3 n_in→n_in, nearest ×2, LeakyReLU, conv3×3 n_in→n_out;
    * side: conv3×3 n_in→n_out, nearest ×2, LeakyReLU.

    Args:
        n_in, n_out: input and output channels.
        slope: negative slope of the LeakyReLUs.
    """

    def __init__(self, n_in: int, n_out: int, slope: float = 0.2):
        super().__init__()
        self.main = nn.Sequential(
            _conv3(n_in, n_in),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.LeakyReLU(slope),
            _conv3(n_in, n_out),
        )
        self.side = nn.Sequential(
            _conv3(n_in, n_out),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.LeakyReLU(slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.side(x)


class ResDownBlock(nn.Module):
    """Residual down-sampling block: (B, n_in, H, W) -> (B, n_out, H/2, W/2).

    The mirror of :class:`ResUpBlock`: the sum of two branches, each halving the
    size with a stride-2 conv (no pooling):

    * main: conv3×3 n_in→n_in, LeakyReLU, conv3×3 n_in→n_out with stride 2;
    * side: conv3×3 n_in→n_out with stride 2, LeakyReLU.

    Args:
        n_in, n_out: input and output channels.
        slope: negative slope of the LeakyReLUs.
    """

    def __init__(self, n_in: int, n_out: int, slope: float = 0.2):
        super().__init__()
        self.main = nn.Sequential(
            _conv3(n_in, n_in),
            nn.LeakyReLU(slope),
            _conv3(n_in, n_out, stride=2),
        )
        self.side = nn.Sequential(
            _conv3(n_in, n_out, stride=2),
            nn.LeakyReLU(slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.side(x)


class ConvDecoder(nn.Module):
    """Residual up-sampling decoder for 3×32×32 data: (B, d) -> probabilities (B, 3, 32, 32).

    The authors' CIFAR-10 decoder (biases everywhere, no normalisation layers);
    parameters for d = 64:

    ==========================================  ==========  =========
    layer                                       size        params
    ==========================================  ==========  =========
    Linear d→256·4·4, reshaped                  256×4×4       266,240
    ResUpBlock 256→128                          128×8×8     1,180,160
    ResUpBlock 128→64                           64×16×16      295,168
    conv3×3 64→64, nearest ×2, LeakyReLU        64×32×32       36,928
    conv3×3 64→3, sigmoid                       3×32×32         1,731
    total                                                   1,780,227
    ==========================================  ==========  =========

    Args:
        latent_dim: d.
        image_shape: (C, H, W); H and W divisible by 2**len(channels).
        channels: channels of the fc output and after each residual block.
        slope: negative slope of the LeakyReLUs.
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
        n_up = len(channels)  # residual up-blocks plus the up-sampling conv of the head
        if h % 2**n_up or w % 2**n_up:
            raise ValueError(f"image size {h}×{w} is not divisible by {2**n_up}")
        self.base = (channels[0], h // 2**n_up, w // 2**n_up)
        self.fc = nn.Linear(self.latent_dim, _prod(self.base))
        self.blocks = nn.Sequential(
            *(ResUpBlock(a, b, slope) for a, b in zip(channels[:-1], channels[1:], strict=True))
        )
        self.head = nn.Sequential(
            _conv3(channels[-1], channels[-1]),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.LeakyReLU(slope),
            _conv3(channels[-1], c_img),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).reshape(z.shape[0], *self.base)
        return self.head(self.blocks(h))


class ConvEncoder(nn.Module):
    """Mirror of :class:`ConvDecoder`: (B, 3, 32, 32) -> (B, d).

    Biases everywhere, no normalisation layers; parameters for d = 64:

    ==========================================  ==========  =========
    layer                                       size        params
    ==========================================  ==========  =========
    conv3×3 3→64, LeakyReLU                     64×32×32        1,792
    conv3×3 64→64 stride 2, LeakyReLU           64×16×16       36,928
    ResDownBlock 64→128                         128×8×8       184,640
    ResDownBlock 128→256                        256×4×4       737,920
    Linear 256·4·4→d                            d             262,208
    total                                                   1,223,488
    ==========================================  ==========  =========

    Args:
        latent_dim: d.
        image_shape: (C, H, W); H and W divisible by 2**len(channels).
        channels: channels after the first conv and after each residual block.
        slope: negative slope of the LeakyReLUs.
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
            *(ResDownBlock(a, b, slope) for a, b in zip(channels[:-1], channels[1:], strict=True))
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
            raise ValueError(f"encoder latent_dim {encoder.latent_dim} != decoder latent_dim {decoder.latent_dim}")
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
    return Autoencoder(build_encoder(image_shape, latent_dim), build_decoder(image_shape, latent_dim))


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
