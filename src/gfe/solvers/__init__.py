"""Solvers of the encoding flow: one class per method, one registry, one entry point."""

from __future__ import annotations

from .amd import AMDOptions, AMDSolver
from .base import FlowDivergedError, SolverOutput
from .lbfgs import LBFGSOptions as LBFGSOptions
from .lbfgs import LBFGSSolver
from .lbfgs_dense import DenseLBFGSOptions, DenseLBFGSSolver
from .odeint import Dopri5Solver, FixedStepSolver

SOLVERS = {
    "amd": AMDSolver,
    "euler": lambda **options: FixedStepSolver(method="euler", **options),
    "rk4": lambda **options: FixedStepSolver(method="rk4", **options),
    "dopri5": Dopri5Solver,
    "lbfgs": LBFGSSolver,
    "lbfgs_dense": DenseLBFGSSolver,
}


def make_solver(name: str, **options):
    """Build a solver by name; unknown names and options raise a ValueError naming them."""
    if name not in SOLVERS:
        raise ValueError(f"solver={name!r} is unknown; allowed: {sorted(SOLVERS)}")
    try:
        return SOLVERS[name](**options)
    except TypeError as error:
        raise ValueError(f"solver={name!r} got an option it does not take: {error}") from error


__all__ = [
    "AMDOptions",
    "AMDSolver",
    "DenseLBFGSOptions",
    "DenseLBFGSSolver",
    "Dopri5Solver",
    "FixedStepSolver",
    "FlowDivergedError",
    "SolverOutput",
    "SOLVERS",
    "make_solver",
]
