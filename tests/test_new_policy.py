"""Adding a policy is adding one class: a throwaway cosine policy, defined in this test and
nowhere else, is planned, trained on a tiny task and reported with no other edit.

It runs in a process of its own, so that the class it registers stays out of every other
test's registry. (The workflow's config check would still refuse the name until the schema's
`policies` enum lists it; test_schedules checks that the enum and the registry agree.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # it trains a tiny model

SCRIPT = r'''
import json
import sys
from pathlib import Path

import numpy as np

from workflow_scripts.policy_base import Policy, cosine_anneal, required_setting


class CosineToZero(Policy):
    """Cosine annealing from learning_rate to 0 over the whole run (SGDR without restarts)."""

    name = "cosine_to_zero"

    def __init__(self, learning_rate, total_steps):
        self.learning_rate, self.total_steps = learning_rate, total_steps

    def __call__(self, step, ops=np):
        fraction = ops.minimum(step / self.total_steps, 1.0)
        return cosine_anneal(self.learning_rate, 0.0, fraction, ops)

    @classmethod
    def arguments(cls, settings, length):
        return {"learning_rate": required_setting(cls.name, settings, "learning_rate"),
                "total_steps": length.steps_per_epoch * length.epochs}


from fake_runs import SETTINGS, write_fake_results  # noqa: E402
from test_report import settings_for, target_report  # noqa: E402
from test_train import tiny_run  # noqa: E402

from workflow_scripts.plan import Grid, needs_lr_finder_bounds, twins  # noqa: E402

folder = Path(sys.argv[1])
policies = ("constant", "time_decay", "cosine_to_zero")
grid = Grid(("Effusion",), ("mobilenet",), policies, (0, 1, 2),
            twins={"Effusion": twins(policies, SETTINGS)})

trained = tiny_run(folder / "train", "mobilenet", "cosine_to_zero", epochs=2,
                   learning_rate=0.01)
info = write_fake_results(folder / "results", targets=("Effusion",), policies=policies,
                          seeds=(0, 1, 2), test_images=80)
report = target_report(info["results"], info, settings_for(grid))
results = report.tables["table5_results"]
comparisons = report.tables["table7_policies"].set_index("policy")
print(json.dumps({
    "run_keys": [list(key) for key in grid.run_keys("Effusion")],
    "needs_bounds": needs_lr_finder_bounds("cosine_to_zero", SETTINGS),
    "schedule": trained.metrics["settings"]["schedule"],
    "lr": trained.lr["lr"].tolist(),
    "test_auroc": trained.metrics["auroc"],
    "reported": results["policy"].tolist(),
    "p_adjusted": [float(comparisons.at["cosine_to_zero", f"p_adjusted_vs_{baseline}"])
                   for baseline in ("constant", "time_decay")],
}))
'''


def test_a_policy_added_in_one_class_is_planned_trained_and_reported(tmp_path):
    tests = Path(__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])},
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])

    assert [key for key in found["run_keys"] if key[2] == "cosine_to_zero"] == [
        ["Effusion", "mobilenet", "cosine_to_zero", seed, 1.0] for seed in (0, 1, 2)]
    assert found["needs_bounds"] is False

    lr = found["lr"]
    total_steps = found["schedule"]["total_steps"]
    assert found["schedule"]["learning_rate"] == 0.01 and total_steps == len(lr)
    assert lr[0] == pytest.approx(0.01) and lr[len(lr) // 2] == pytest.approx(0.005, rel=0.1)
    assert (np.diff(lr) <= 0).all() and lr[-1] < 1e-4
    assert 0 <= found["test_auroc"] <= 1

    assert found["reported"] == ["constant", "time_decay", "cosine_to_zero"]
    assert all(0 <= p <= 1 for p in found["p_adjusted"])
