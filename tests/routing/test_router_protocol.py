"""A routing baseline added from outside the package: a Router class in a module of its own,
named in the registry (`routing.baselines`), evaluated by the real graph."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest

from skill_assets.app.runner import run_project
from skill_assets.core.errors import RegistryError
from skill_assets.core.registry import load_project
from skill_assets.core.store import read_asset
from skill_assets.routing.evaluation import evaluate_routing
from skill_assets.routing.routers import ROUTERS
from tests.conftest import write_project
from tests.routing.test_routing import HAND, HAND_SLICES, make_results, make_slices

# Arithmetic questions to alpha, every other question to beta: a rule no built-in router
# follows, so its accuracy is its own.
ROUTER_MODULE = '''
import numpy as np


class ArithmeticToAlpha:
    """Arithmetic questions to alpha, the others to beta."""

    name = "arithmetic_to_alpha"

    def route(self, ctx, scheme):
        arithmetic = np.array([u.split("/", 1)[1].startswith("arithmetic") for u in ctx.uids])
        alpha, beta = ctx.models.index("alpha"), ctx.models.index("beta")
        return ctx.picked(np.where(arithmetic, alpha, beta))
'''


def _importable_module(tmp_path, monkeypatch) -> str:
    """Write the router module and put its folder on the path of this process and of every
    process it starts (Dagster's step processes)."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "my_routers.py").write_text(ROUTER_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    paths = [str(folder), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    return "my_routers:ArithmeticToAlpha"


def test_registry_baseline_reaches_the_routing_evaluation_asset(tmp_path, monkeypatch):
    spec = _importable_module(tmp_path, monkeypatch)
    root = write_project(tmp_path / "proj", extra_registry=f'  baselines: ["{spec}"]\n')
    # Dagster's multiprocess executor: the asset runs in another process, which only the
    # registry key (an import path) can tell about the router.
    summary = run_project(root, progress=False, executor="multiprocess")
    assert "routing_evaluation" in summary["materialized"]
    assert "arithmetic_to_alpha" not in ROUTERS  # never registered in this process

    rows = [json.loads(line) for line in (root / "results" / "all.jsonl").read_text().splitlines()]
    correct = {(r["model"], r["instance_id"]): r["correct"] for r in rows}
    ids = sorted({r["instance_id"] for r in rows})
    expected = np.mean([correct["alpha" if i.startswith("arithmetic") else "beta", i] for i in ids])
    ev = read_asset(load_project(root), "routing_evaluation")
    ours = ev.filter(pl.col("router") == "arithmetic_to_alpha")
    schemes = ev["scheme"].unique().sort().to_list()
    assert sorted(ours["scheme"].to_list()) == schemes == ["kfold", "loo"]
    for r in ours.iter_rows(named=True):
        best = ev.filter((pl.col("scheme") == r["scheme"]) & (pl.col("router") == "best_single"))
        assert r["n"] == len(ids) == 120
        assert r["accuracy"] == pytest.approx(expected)
        assert r["gain_vs_best_single"] == pytest.approx(expected - best["accuracy"][0])
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    # the built-in routers are all still there, ahead of the extra one
    loo = ev.filter(pl.col("scheme") == "loo")["router"].to_list()
    assert loo[-1] == "arithmetic_to_alpha" and set(loo[:-1]) <= set(ROUTERS)


def test_bad_baselines_name_the_registry_key(tmp_path, monkeypatch):
    results, slices = make_results(HAND), make_slices(HAND_SLICES)
    with pytest.raises(RegistryError, match=r"key 'routing.baselines\[0\]': cannot import"):
        evaluate_routing(results, slices, baselines=["no_such_module_here:Router"])
    with pytest.raises(RegistryError, match=r"key 'routing.baselines\[0\]'.*has no"):
        evaluate_routing(results, slices, baselines=["json:NoSuchRouter"])
    with pytest.raises(RegistryError, match=r"key 'routing.baselines\[0\]'.*not a Router"):
        evaluate_routing(results, slices, baselines=["json:JSONDecoder"])
    spec = _importable_module(tmp_path, monkeypatch)
    with pytest.raises(RegistryError, match=r"key 'routing.baselines\[1\]'.*already exists"):
        evaluate_routing(results, slices, baselines=[spec, spec])
    root = write_project(tmp_path / "proj", extra_registry='  baselines: ["not a path"]\n')
    with pytest.raises(RegistryError, match=r"key 'routing.baselines': 'not a path' is not"):
        load_project(root)
