"""Claim 4's sweep (src/scripts/solver_robustness.py): every row says how its flows ended."""

import sys

import pytest
import torch

from workflow_helpers import REPO

sys.path.insert(0, str(REPO / "src"))
from gfe.models import MLPDecoder  # noqa: E402
from gfe.solvers import FlowDivergedError  # noqa: E402
from scripts import solver_robustness  # noqa: E402
from scripts.solver_robustness import encode_final, endings, parse_decoder  # noqa: E402


def test_endings_name_the_one_ending_all_images_share_or_mixed():
    tau = 100.0
    every = endings(torch.tensor([100.0, 100.0]), torch.tensor([False, False]), tau)
    assert every["stop_reason"] == "tau" and every["reached_tau_frac"] == 1.0 and every["t_mean"] == 100.0
    assert endings(torch.tensor([20.0, 30.0]), torch.tensor([True, True]), tau)["stop_reason"] == "convergence test"
    capped = endings(torch.tensor([20.0, 30.0]), torch.tensor([False, False]), tau)
    assert capped["stop_reason"] == "evaluation cap" and capped["capped_frac"] == 1.0
    mixed = endings(torch.tensor([100.0, 30.0, 40.0]), torch.tensor([False, True, False]), tau)
    assert mixed["stop_reason"] == "mixed"
    assert mixed["reached_tau_frac"] + mixed["converged_frac"] + mixed["capped_frac"] == pytest.approx(1.0)
    # an image at tau reached tau, whatever its convergence flag says
    assert endings(torch.tensor([100.0]), torch.tensor([True]), tau)["stop_reason"] == "tau"


def test_a_sweep_row_records_its_ending_and_a_diverged_flow_says_so(monkeypatch):
    torch.manual_seed(0)
    decoder = MLPDecoder(latent_dim=4)
    x = (torch.rand(6, 1, 28, 28) > 0.5).float()
    z0 = torch.zeros(6, 4)
    rk4 = encode_final(decoder, x, z0, "bce", tau=50.0, solver="rk4", order=1, steps=10)
    assert rk4["stop_reason"] == "tau" and rk4["t_mean"] == pytest.approx(50.0) and not rk4["diverged"]
    amd = encode_final(decoder, x, z0, "bce", tau=1e4, solver="amd", dt_init=1.0, dt_max=10.0, conv_tol=1e-2)
    assert amd["stop_reason"] in {"tau", "convergence test", "evaluation cap", "mixed"}
    assert amd["converged_frac"] > 0 and amd["t_mean"] < 1e4

    def diverging(*args, **kwargs):
        raise FlowDivergedError("non-finite state", samples=[0], step=3)

    monkeypatch.setattr(solver_robustness.gfe, "encode", diverging)
    blown = encode_final(decoder, x, z0, "bce", tau=50.0, solver="rk4", order=1, steps=2)
    assert blown["diverged"] and blown["stop_reason"] == "diverged" and blown["loss_mean"] == float("inf")


@pytest.mark.parametrize(
    "value",
    ["gfe_amd:e2=m.pt", "gfe_amd:e2:x=m.pt", "gfe_amd:e2:0", ":e2:0=m.pt", "gfe_amd:e2:0:1=m.pt"],
)
def test_a_decoder_without_model_experiment_and_seed_is_refused(value):
    with pytest.raises(ValueError, match="MODEL:EXPERIMENT:SEED=MODEL_FILE"):
        parse_decoder(value)


def test_a_decoder_names_its_model_experiment_and_seed():
    assert parse_decoder("gfe_rk4:e3:2=results/m.pt") == ("gfe_rk4", "e3", 2, "results/m.pt")
