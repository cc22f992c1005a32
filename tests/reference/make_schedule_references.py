"""One-off: the learning rate (and momentum) at every step of a few schedules, as their
reference implementations compute them, for tests/test_schedule_references.py.

    .venv/bin/python tests/reference/make_schedule_references.py

installs torch, timm and transformers (PINS) into a throwaway virtual environment, reruns
itself there and writes tests/reference/schedule_references.json: per case the peer's call,
the versions that ran it, our policy with the parameters that should reproduce it, and the
values. Neither the workflow nor the test suite needs these libraries. The values are what
the optimizer holds before each of its steps, read from its parameter group (PyTorch,
transformers) or from timm's `step_update(t)`.
"""

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

# timm imports torchvision, which must be the build for this torch.
PINS = ("torch==2.14.1", "torchvision==0.29.1", "timm==1.0.29", "transformers==4.57.6")
OUTPUT = Path(__file__).with_name("schedule_references.json")
INSIDE = "SCHEDULE_REFERENCES_ENV"


def torch_run(make_scheduler, steps, momentum=0.9):
    """Learning rate and momentum before each of `steps` optimizer steps."""
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=momentum)
    scheduler = make_scheduler(optimizer)
    learning_rates, momenta = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        learning_rates.append(float(group["lr"]))
        momenta.append(float(group["momentum"]))
        optimizer.step()
        scheduler.step()
    return learning_rates, momenta


def timm_run(make_scheduler, steps):
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = make_scheduler(optimizer)
    learning_rates = []
    for step in range(steps):
        scheduler.step_update(num_updates=step)
        learning_rates.append(float(optimizer.param_groups[0]["lr"]))
    return learning_rates


def cyclic_cases():
    from torch.optim.lr_scheduler import CyclicLR

    bounds = {"base_lr": 0.0075, "max_lr": 0.03}
    for mode, policy, extra, steps in [("triangular", "triangular", {}, 130),
                                       ("triangular2", "triangular2", {}, 170),
                                       ("exp_range", "exp_range", {"gamma": 0.99}, 130)]:
        for base_momentum, max_momentum in [(0.85, 0.95), (0.8, 0.9)]:
            call = dict(**bounds, step_size_up=20, mode=mode, cycle_momentum=True,
                        base_momentum=base_momentum, max_momentum=max_momentum, **extra)
            lr, momentum = torch_run(lambda optimizer, call=call: CyclicLR(optimizer, **call),
                                     steps)
            yield {"peer": f"torch.optim.lr_scheduler.CyclicLR(**{call})", "policy": policy,
                   "params": {**bounds, "step_size": 20, **extra},
                   "momentum": {"base_momentum": base_momentum, "max_momentum": max_momentum},
                   "lr": lr, "momentum_values": momentum}


def one_cycle_cases():
    from torch.optim.lr_scheduler import OneCycleLR

    for call in [{"max_lr": 0.03, "total_steps": 200},
                 {"max_lr": 0.03, "total_steps": 200, "three_phase": True},
                 {"max_lr": 0.1, "total_steps": 97, "pct_start": 0.25, "div_factor": 10.0,
                  "final_div_factor": 100.0, "base_momentum": 0.8, "max_momentum": 0.9},
                 {"max_lr": 0.1, "total_steps": 97, "pct_start": 0.4, "three_phase": True,
                  "base_momentum": 0.8, "max_momentum": 0.9}]:
        lr, momentum = torch_run(lambda optimizer, call=call: OneCycleLR(
            optimizer, anneal_strategy="cos", cycle_momentum=True, **call), call["total_steps"])
        params = {key: value for key, value in call.items()
                  if key not in ("base_momentum", "max_momentum")}
        yield {"peer": f"torch.optim.lr_scheduler.OneCycleLR(**{call}, anneal_strategy='cos', "
                       "cycle_momentum=True)",
               "policy": "one_cycle", "params": params,
               "momentum": {"base_momentum": call.get("base_momentum", 0.85),
                            "max_momentum": call.get("max_momentum", 0.95)},
               "lr": lr, "momentum_values": momentum}


def warm_restart_cases():
    """SGDR as PyTorch's CosineAnnealingWarmRestarts (no decay of the peaks) and timm's
    CosineLRScheduler (decay with lr_min 0, where timm and Keras agree: see policies.SGDR)."""
    from timm.scheduler import CosineLRScheduler
    from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

    for first, mul, floor, steps in [(20, 2, 0.0, 150), (25, 1, 0.002, 110), (10, 3, 0.001, 140)]:
        lr, _ = torch_run(lambda optimizer, first=first, mul=mul, floor=floor:
                          CosineAnnealingWarmRestarts(optimizer, T_0=first, T_mult=mul,
                                                      eta_min=floor), steps)
        yield {"peer": f"torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0={first}, "
                       f"T_mult={mul}, eta_min={floor}) with lr=0.1",
               "policy": "sgdr",
               "params": {"max_lr": 0.1, "first_cycle_steps": first, "cycle_mul": float(mul),
                          "min_lr_fraction": floor / 0.1},
               "lr": lr}
    for first, mul, decay, steps in [(20, 2.0, 0.5, 150), (16, 1.5, 0.7, 120)]:
        call = dict(t_initial=first, cycle_mul=mul, cycle_decay=decay, lr_min=0.0,
                    cycle_limit=100, t_in_epochs=False)
        lr = timm_run(lambda optimizer, call=call: CosineLRScheduler(optimizer, **call), steps)
        yield {"peer": f"timm.scheduler.CosineLRScheduler(**{call}) with lr=0.1",
               "policy": "sgdr",
               "params": {"max_lr": 0.1, "first_cycle_steps": first, "cycle_mul": mul,
                          "cycle_decay": decay},
               "lr": lr}


def cosine_cases():
    from timm.scheduler import CosineLRScheduler

    for total, warmup, floor in [(150, 10, 0.001), (120, 0, 0.0), (90, 25, 0.0)]:
        call = dict(t_initial=total - warmup, lr_min=floor, warmup_t=warmup,
                    warmup_lr_init=floor, warmup_prefix=True, t_in_epochs=False)
        lr = timm_run(lambda optimizer, call=call: CosineLRScheduler(optimizer, **call), total)
        yield {"peer": f"timm.scheduler.CosineLRScheduler(**{call}) with lr=0.1",
               "policy": "cosine",
               "params": {"max_lr": 0.1, "total_steps": total, "warmup_steps": warmup,
                          "min_lr_fraction": floor / 0.1},
               "lr": lr}


def wsd_cases():
    from transformers import get_wsd_schedule

    for total, warmup, cooldown, shape, ratio in [(150, 10, 30, "1-sqrt", 0.0),
                                                  (150, 10, 30, "linear", 0.1),
                                                  (100, 0, 40, "cosine", 0.05),
                                                  (97, 7, 19, "1-sqrt", 0.02)]:
        call = dict(num_warmup_steps=warmup, num_decay_steps=cooldown,
                    num_training_steps=total, warmup_type="linear", decay_type=shape,
                    min_lr_ratio=ratio)
        lr, _ = torch_run(lambda optimizer, call=call: get_wsd_schedule(optimizer, **call), total)
        yield {"peer": f"transformers.get_wsd_schedule(**{call}) with lr=0.1",
               "policy": "wsd",
               "params": {"max_lr": 0.1, "total_steps": total, "warmup_steps": warmup,
                          "cooldown_steps": cooldown, "cooldown_shape": shape,
                          "min_lr_fraction": ratio},
               "lr": lr}


def write_references():
    from importlib.metadata import version

    cases = [*cyclic_cases(), *one_cycle_cases(), *warm_restart_cases(), *cosine_cases(),
             *wsd_cases()]
    OUTPUT.write_text(json.dumps({
        "made_by": "tests/reference/make_schedule_references.py",
        "versions": {name: version(name) for name in ("torch", "timm", "transformers")},
        "python": sys.version.split()[0],
        "cases": cases,
    }, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUTPUT}")


def main():
    if os.environ.get(INSIDE):
        write_references()
        return
    with tempfile.TemporaryDirectory() as folder:
        venv.create(folder, with_pip=True)
        python = str(Path(folder) / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "--quiet", *PINS], check=True)
        subprocess.run([python, __file__], check=True, env={**os.environ, INSIDE: "1"})


if __name__ == "__main__":
    main()
