"""The ICT regressor's ridge normal equations are solved by Cholesky (LU stays the fallback)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from facecontrol.pipelines.pie.ict import solve_normal_equations


def test_cholesky_solve_equals_a_float64_solve_and_falls_back_to_lu():
    rng = torch.Generator().manual_seed(0)
    design = torch.randn(6, 136, 73, generator=rng)
    lhs = design.mT @ design + 0.05 * torch.eye(73)
    rhs = torch.randn(6, 73, 1, generator=rng)
    reference = torch.linalg.solve(lhs.double(), rhs.double())
    assert torch.allclose(solve_normal_equations(lhs, rhs).double(), reference, rtol=1e-4, atol=1e-5)
    indefinite = torch.diag_embed(torch.tensor([[2.0, -1.0, 3.0]]))  # no Cholesky factor: LU answers
    solution = solve_normal_equations(indefinite, torch.ones(1, 3, 1))
    assert torch.allclose(solution.flatten(), torch.tensor([0.5, -1.0, 1 / 3]))


def test_a_batch_regresses_after_torch_set_num_threads(tmp_path):
    """On torch 2.14.1 the LU solve of a batch of these systems failed once a script had called
    torch.set_num_threads(2) (MKL SLASWP errors): the regressor must not depend on it."""
    script = textwrap.dedent(
        """
        import sys, torch
        torch.set_num_threads(2)
        sys.path[:0] = sys.argv[1:]
        from pie_stand_ins import small_models
        models = small_models(with_recognition=False, with_perceptual=False)
        ws = models.generator.sample_ws(8, torch.Generator().manual_seed(0), 0.7)
        with torch.no_grad():
            theta = models.formation.regress(models.generator.synthesis(ws))
        assert all(torch.isfinite(value).all() for value in theta.values())
        print("regressed", theta["angles"].shape[0])
        """
    )
    tests = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", script, tests], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "regressed 8" in done.stdout, done.stderr[-2000:]
