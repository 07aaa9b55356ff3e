"""vaelab.training.optim.make_adam is torch's fused Adam to the bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import torch
from helpers import subprocess_env

from vaelab.training.optim import make_adam


def _train(make, steps: int = 6, switch_to=None) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A few Adam steps on a tiny net; with ``switch_to`` the optimizer is rebuilt from its state dict half-way."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 12))
    x = torch.rand(16, 12, generator=torch.Generator().manual_seed(1))
    opt = make(net.parameters())
    for step in range(steps):
        if switch_to is not None and step == steps // 2:
            saved = opt.state_dict()
            opt = switch_to(net.parameters())
            opt.load_state_dict(saved)
        opt.zero_grad(set_to_none=True)
        ((net(x) - x) ** 2).mean().backward()
        opt.step()
    return net, opt


def fused(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-2, fused=True)


def ours(params) -> torch.optim.Optimizer:
    return make_adam(params, 1e-2)


def test_updates_and_state_are_those_of_fused_adam() -> None:
    (a, opt_a), (b, opt_b) = _train(ours), _train(fused)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert all(torch.equal(sa["state"][i][k], sb["state"][i][k]) for i in sb["state"] for k in sb["state"][i])


def test_state_dicts_are_interchangeable() -> None:
    """A checkpoint written with either optimizer resumes with the other to the same weights."""
    reference, _ = _train(fused)
    for first, second in ((fused, ours), (ours, fused)):
        net, _ = _train(first, switch_to=second)
        assert all(torch.equal(p, q) for p, q in zip(net.parameters(), reference.parameters()))


def test_no_dynamo_import() -> None:
    code = ("import sys, torch\nfrom vaelab.training.optim import make_adam\nm = torch.nn.Linear(3, 3)\n"
            "opt = make_adam(m.parameters(), 1e-3)\nm(torch.rand(2, 3)).sum().backward()\nopt.step()\n"
            "opt.zero_grad()\nopt.load_state_dict(opt.state_dict())\nprint('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
