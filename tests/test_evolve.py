"""Evolutionary search: search spaces, the aging-evolution sampler, constraints, trials that fail or are pruned,
several workers on one storage, and a study that survives a kill -9 of its worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from engine.errors import ConfigError, LLModelError, NotFoundError
from engine.evolve.report import best_so_far, export_configs, pareto_front, pick_trial, trial_rows
from engine.evolve.samplers import RegularizedEvolutionSampler, make_sampler
from engine.evolve.space import BUILTIN, SearchSpace, load_space
from engine.evolve.study import StudySettings, create_study, load_study, open_storage, parse_budget
from engine.evolve.trial import train_trial
from engine.evolve.worker import TrialPruned, run_worker
from engine.model.config import ModelConfig
from tests.evolve_worker_script import score

SCRIPT = Path(__file__).with_name("evolve_worker_script.py")
SMALL_SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 3},
}


def settings(**overrides) -> StudySettings:
    values = {
        "space": {"params": SMALL_SPACE, "fixed": {"n_heads": 4}}, "data_path": "unused", "tokenizer_path": None,
        "n_trials": 6, "budget_steps": 5, "sampler": "random", "seed": 0,
        "base_model": {"vocab_size": 512, "d_model": 32, "n_heads": 4, "d_ff": 64, "max_len": 64},
    }  # fmt: skip
    return StudySettings(**{**values, **overrides})


def fake_train(trial, run_dir, stop):
    return [score(trial.params)]


# -- search spaces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "the search space is empty"),
        (
            {"learning_rte": {"type": "float", "low": 0.1, "high": 1}},
            "unknown search parameter 'learning_rte'",
        ),
        ({"n_layers": {"type": "int", "low": 4, "high": 2}}, "low 4 is above high 2"),
        ({"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}, "a log scale needs low > 0"),
        ({"ffn_type": {"type": "categorical", "choices": []}}, "non-empty 'choices'"),
        ({"n_layers": {"type": "int", "low": 1, "high": 2, "stepp": 1}}, "unknown key 'stepp'"),
        ({"n_layers": {"type": "normal"}}, "give type float, int or categorical"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_parameter(params, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace(params)


def test_a_setting_both_varied_and_fixed_is_contradictory():
    with pytest.raises(ConfigError, match="'n_layers' is both varied and fixed"):
        SearchSpace(dict(SMALL_SPACE), {"n_layers": 2})


def test_space_files_and_builtin_spaces_load(tmp_path):
    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text("n_layers: {type: int, low: 1, high: 3}\nfixed: {d_model: 64}\n")
    json_file = tmp_path / "space.json"
    json_file.write_text(json.dumps({"learning_rate": SMALL_SPACE["learning_rate"]}))
    assert load_space(str(yaml_file)).fixed == {"d_model": 64}
    assert set(load_space(str(json_file)).params) == {"learning_rate"}
    for name in ("hpo", "nas", "both"):
        assert load_space(name).params == BUILTIN[name]
    with pytest.raises(ConfigError, match="no search space 'hpx'"):
        load_space("hpx")


def test_a_trial_becomes_model_and_training_overrides():
    space = SearchSpace({"d_ff_ratio": {"type": "categorical", "choices": [2.67]},
                         "pos_type": {"type": "categorical", "choices": ["alibi"]},
                         "learning_rate": SMALL_SPACE["learning_rate"]}, {"d_model": 96})  # fmt: skip
    model, train = space.split({"d_ff_ratio": 2.67, "pos_type": "alibi", "learning_rate": 1e-3})
    assert model == {
        "d_model": 96,
        "d_ff": 264,
        "pos_type": "alibi",
        "use_rope": False,
    }  # 2.67·96 = 256.3 → 264
    assert train == {"learning_rate": 1e-3}


# -- regularized evolution ------------------------------------------------------------------------


def finished(number: int, value: float, lr: float = 1e-3) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        params={"learning_rate": lr, "n_layers": 2}, value=value,
        distributions={"learning_rate": FloatDistribution(1e-4, 1e-1, log=True), "n_layers": IntDistribution(1, 3)},
    )  # fmt: skip
    trial.number = number
    return trial


def test_evolution_samples_at_random_until_the_population_is_full():
    sampler = RegularizedEvolutionSampler(population=4, tournament=2, seed=0)
    assert sampler.select_parent([finished(i, float(i)) for i in range(3)]) is None


def test_the_tournament_winner_is_the_best_contestant_and_the_oldest_are_retired():
    # Trial 0 is by far the best but the oldest: with a population of 4 among 6 finished trials it has retired.
    trials = [finished(0, -100.0)] + [finished(i, float(i)) for i in range(1, 6)]
    sampler = RegularizedEvolutionSampler(population=4, tournament=4, seed=0)
    assert sampler.select_parent(trials).number == 2, "a full tournament picks the best of the living (2..5)"
    parents = [RegularizedEvolutionSampler(population=4, tournament=2, seed=7).select_parent(trials).number
               for _ in range(3)]  # fmt: skip
    assert len(set(parents)) == 1, "the same seed makes the same choice"
    many = RegularizedEvolutionSampler(population=4, tournament=2, seed=1)
    chosen = {many.select_parent(trials).number for _ in range(200)}
    assert chosen <= {2, 3, 4} and 0 not in chosen and 5 not in chosen, "the worst can never win a pair"


def test_a_mutation_changes_exactly_one_parameter_within_its_distribution():
    space = {
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True), "n_layers": IntDistribution(1, 3),
        "ffn_type": CategoricalDistribution(["swiglu", "gelu"]),
    }  # fmt: skip
    parent = {"learning_rate": 1e-3, "n_layers": 2, "ffn_type": "gelu"}
    sampler = RegularizedEvolutionSampler(population=4, tournament=2, seed=3)
    for _ in range(50):
        child = sampler.mutate(parent, space)
        changed = [k for k in parent if child[k] != parent[k]]
        assert len(changed) == 1
        name = changed[0]
        assert space[name]._contains(space[name].to_internal_repr(child[name]))


def test_evolution_finds_a_better_optimum_than_its_random_start():
    study = optuna.create_study(sampler=RegularizedEvolutionSampler(population=8, tournament=3, seed=0))
    distributions = SearchSpace(SMALL_SPACE).distributions()
    for _ in range(60):
        trial = study.ask(distributions)
        study.tell(trial, score(trial.params))
    random_phase = min(t.value for t in study.trials[:8])
    assert study.best_value < random_phase / 4


def test_unknown_sampler_and_evolution_with_two_objectives_are_refused():
    with pytest.raises(ConfigError, match="unknown sampler 'cmaes'"):
        make_sampler("cmaes", population=4, seed=0, objectives=1)
    with pytest.raises(ConfigError, match="use --sampler nsga2"):
        make_sampler("evolution", population=4, seed=0, objectives=2)


# -- study settings and storage -------------------------------------------------------------------


def test_study_settings_refuse_unknown_objectives_samplers_and_budgets():
    with pytest.raises(ConfigError, match="unknown objective 'acc'"):
        settings(objectives=["val_loss", "acc"])
    with pytest.raises(ConfigError, match="the first objective is val_loss"):
        settings(objectives=["params"])
    with pytest.raises(ConfigError, match="unknown sampler 'grid'"):
        settings(sampler="grid")
    assert (
        parse_budget("200") == (200, None)
        and parse_budget("2m") == (None, 2.0)
        and parse_budget("90s") == (None, 1.5)
    )
    with pytest.raises(ConfigError, match="give steps"):
        parse_budget("many")


def test_a_study_resumes_only_with_its_own_space_and_an_unreachable_storage_is_one_line(tmp_path):
    url = str(tmp_path / "s.journal")
    create_study("s", settings(), url, resume=False)
    with pytest.raises(ConfigError, match="already exists"):
        create_study("s", settings(), url, resume=False)
    other = settings(space={"params": {"n_layers": SMALL_SPACE["n_layers"]}, "fixed": {"n_heads": 4}})
    with pytest.raises(ConfigError, match="searches a different space"):
        create_study("s", other, url, resume=True)
    assert load_study("s", url)[1].space == settings().space, "the refused resume changed nothing"
    with pytest.raises(NotFoundError, match="no study t"):
        create_study("t", settings(), url, resume=True)
    with pytest.raises(LLModelError, match="cannot open the study storage"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")


# -- workers ------------------------------------------------------------------------------------------


def test_invalid_architectures_and_over_budget_ones_never_reach_training(tmp_path):
    space = {"d_model": {"type": "categorical", "choices": [32, 48, 96]},
             "n_heads": {"type": "categorical", "choices": [3, 4]}}  # fmt: skip
    budget = ModelConfig.from_dict({**settings().base_model, "d_model": 48, "n_heads": 4}).num_parameters()
    config = settings(space={"params": space, "fixed": {}}, sampler="tpe", n_trials=4, max_params=budget)
    study = create_study("c", config, str(tmp_path / "c.journal"), resume=False)
    trained = []

    def train(trial, run_dir, stop):
        model = ModelConfig.from_dict({**config.base_model, **trial.params})
        trained.append(model.num_parameters())
        return [float(model.num_parameters())]

    summary = run_worker(study, config, tmp_path, train=train)
    assert summary.completed == 4 and summary.rejected > 0
    assert max(trained) <= budget, "no over-budget architecture was trained"
    rows = trial_rows(study, config)
    rejected = [r for r in rows if r.state == "rejected"]
    assert all(
        r.reason.startswith("invalid architecture") or "exceed the budget" in r.reason for r in rejected
    )
    for trial in study.get_trials(states=(TrialState.PRUNED,)):
        assert trial.constraints["budget"] > 0, "the sampler learns rejected regions through the constraint"
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert trial.constraints["budget"] <= 0


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    config = settings(n_trials=3)
    study = create_study("f", config, str(tmp_path / "f.journal"), resume=False)
    calls = []

    def train(trial, run_dir, stop):
        calls.append(trial.number)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return [score(trial.params)]

    summary = run_worker(study, config, tmp_path, train=train)
    assert (summary.completed, summary.failed) == (3, 1)
    failed = [r for r in trial_rows(study, config) if r.state == "failed"]
    assert failed[0].reason == "RuntimeError: CUDA out of memory (simulated)"


@pytest.mark.slow
def test_a_real_trial_is_pruned_when_its_validation_loss_is_hopeless(tmp_path, dataset_dir, tokenizer_dir):
    config = settings(data_path=str(dataset_dir), tokenizer_path=str(tokenizer_dir), budget_steps=8,
                      base_train={"batch_size": 2, "seq_len": 32, "eval_interval": 2, "eval_batches": 1,
                                  "warmup_steps": 0, "device": "cpu"})  # fmt: skip
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))  # every loss is above 1 nat
    trial = study.ask(config.search_space.distributions())
    with pytest.raises(TrialPruned):
        train_trial(config, trial, tmp_path / "run", lambda: False)
    steps = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert max(e.get("step", 0) for e in steps) <= 3, (
        "stopped after the first validation (step 2), not at step 8"
    )


@pytest.mark.slow
def test_a_trial_trains_a_real_run_and_reports_its_objectives(tmp_path, dataset_dir, tokenizer_dir):
    config = settings(data_path=str(dataset_dir), tokenizer_path=str(tokenizer_dir), budget_steps=4,
                      objectives=["val_loss", "params", "latency"], sampler="nsga2",
                      base_train={"batch_size": 2, "seq_len": 32, "eval_interval": 4, "eval_batches": 1,
                                  "warmup_steps": 0, "device": "cpu"})  # fmt: skip
    study = create_study("r", config, str(tmp_path / "r.journal"), resume=False)
    trial = study.ask(config.search_space.distributions())
    val_loss, params, latency = train_trial(config, trial, tmp_path / "run", lambda: False)
    model = ModelConfig.from_dict({**config.base_model, **config.search_space.split(trial.params)[0]})
    assert 0 < val_loss < 10 and params == model.num_parameters() and latency > 0
    assert (tmp_path / "run" / "checkpoints").is_dir() and (tmp_path / "run" / "events.jsonl").is_file()


def start_worker(journal: Path, name: str, folder: Path, seconds: float) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(journal), name, str(folder / "result.json"), str(seconds)],
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])},
    )


@pytest.mark.slow
def test_two_worker_processes_on_one_journal_complete_exactly_n_trials(tmp_path):
    journal = tmp_path / "shared.journal"
    create_study("two", settings(n_trials=8), str(journal), resume=False)
    workers = [start_worker(journal, "two", tmp_path / f"w{i}", 0.3) for i in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    results = [json.loads((tmp_path / f"w{i}" / "result.json").read_text()) for i in range(2)]
    done = [set(r["completed"]) for r in results]
    study, _ = load_study("two", str(journal))
    complete = {t.number for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(complete) == 8, "exactly N trials complete"
    assert done[0].isdisjoint(done[1]), "no trial was completed twice"
    assert done[0] | done[1] == complete, "none was lost"
    assert sum(len(r["trained"]) for r in results) == 8, "and none was trained for nothing"
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


@pytest.mark.slow
def test_a_trial_whose_worker_was_killed_is_failed_and_retried_on_resume(tmp_path):
    journal = tmp_path / "k.journal"
    create_study("k", settings(n_trials=3), str(journal), resume=False)
    worker = start_worker(journal, "k", tmp_path / "w", 60.0)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "w").glob("started-*")):
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.1)
    started = next((tmp_path / "w").glob("started-*"))
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    study, config = load_study("k", str(journal))
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 1, "the killed trial is left running"
    summary = run_worker(study, config, tmp_path, train=fake_train)
    assert summary.completed == 3
    killed = study.trials[int(started.name.split("-")[1])]
    assert killed.state == TrialState.FAIL and "no heartbeat" in killed.user_attrs["reason"]
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == killed.number]
    assert (
        retried
        and retried[0].state == TrialState.COMPLETE
        and retried[0].params == json.loads(started.read_text())
    )
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


# -- results ------------------------------------------------------------------------------------------


def test_results_pareto_front_best_so_far_and_export(tmp_path):
    config = settings(objectives=["val_loss", "params"], sampler="nsga2", n_trials=8)
    study = create_study("p", config, str(tmp_path / "p.journal"), resume=False)

    def train(trial, run_dir, stop):
        params = ModelConfig.from_dict(
            {**config.base_model, "n_layers": trial.params["n_layers"]}
        ).num_parameters()
        return [score(trial.params), float(params)]

    run_worker(study, config, tmp_path, train=train)
    front = pareto_front(study)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for member in front:  # independent check: no complete trial dominates a front member
        assert not any(all(o <= m for o, m in zip(t.values, member.values, strict=True)) and t.values != member.values
                       for t in complete)  # fmt: skip
    assert [t.values[0] for t in front] == sorted(t.values[0] for t in front)
    curve = best_so_far(study)
    assert [v for _, v in curve] == sorted((v for _, v in curve), reverse=True)
    chosen = pick_trial(study, None)
    assert chosen.values[0] == min(t.values[0] for t in front)
    model_path, train_path = export_configs(config, chosen, tmp_path / "export")
    exported = ModelConfig.load(model_path)
    assert exported.n_layers == chosen.params["n_layers"] and exported.d_model == 32
    assert json.loads(train_path.read_text())["learning_rate"] == pytest.approx(
        chosen.params["learning_rate"]
    )
    with pytest.raises(NotFoundError, match="no trial 99"):
        pick_trial(study, 99)


@pytest.mark.slow
def test_the_final_validation_is_the_objective_never_a_reason_to_prune(tmp_path, dataset_dir, tokenizer_dir):
    config = settings(data_path=str(dataset_dir), tokenizer_path=str(tokenizer_dir), budget_steps=4,
                      base_train={"batch_size": 2, "seq_len": 32, "eval_interval": 4, "eval_batches": 1,
                                  "warmup_steps": 0, "device": "cpu"})  # fmt: skip
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))  # would prune any loss
    trial = study.ask(config.search_space.distributions())
    (val_loss,) = train_trial(config, trial, tmp_path / "run", lambda: False)
    assert val_loss > 1.0
