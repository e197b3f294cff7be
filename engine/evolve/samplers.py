"""Samplers: Optuna's NSGA-II, TPE and random search, and regularized (aging) evolution written as an Optuna sampler.

Regularized evolution (Real et al. 2019): the population is the most recent ``population`` finished trials (the
oldest retire as new ones finish); each new trial is a copy of a tournament winner — the best of ``tournament``
members drawn at random — with one parameter mutated. Until the population is full, trials are random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from engine.errors import ConfigError

SAMPLERS = ("nsga2", "evolution", "tpe", "random")


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution on Optuna's ask/tell interface (single objective: the first, minimised)."""

    def __init__(self, population: int = 10, tournament: int = 3, seed: int | None = None) -> None:
        if population < 2 or not 1 <= tournament <= population:
            raise ConfigError(
                f"evolution needs a population ≥ 2 and 1 ≤ tournament ≤ population, got {population}, {tournament}"
            )
        self.population, self.tournament = population, tournament
        self._rng = random.Random(seed)
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return optuna.search_space.intersection_search_space(study.get_trials(deepcopy=False))

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        parent = self.select_parent(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if parent is None:
            return {}
        return self.mutate(parent.params, search_space)

    def select_parent(self, finished: Sequence[FrozenTrial]) -> FrozenTrial | None:
        """The tournament winner among the living (the newest ``population``), or None while it is not full."""
        living = sorted(finished, key=lambda t: t.number)[-self.population :]
        if len(living) < self.population:
            return None
        contestants = self._rng.sample(living, self.tournament)
        return min(contestants, key=lambda t: t.values[0])

    def mutate(self, params: dict[str, Any], space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """A copy of ``params`` with one parameter (of those in ``space``) given a new value."""
        child = {name: params[name] for name in space if name in params}
        name = self._rng.choice(sorted(space))
        child[name] = self._new_value(space[name], params.get(name))
        return child

    def _new_value(self, distribution: BaseDistribution, current: Any) -> Any:
        if isinstance(distribution, CategoricalDistribution):
            others = [c for c in distribution.choices if c != current] or list(distribution.choices)
            return self._rng.choice(others)
        if isinstance(distribution, IntDistribution):
            values = list(range(distribution.low, distribution.high + 1, distribution.step))
            return self._rng.choice([v for v in values if v != current] or values)
        assert isinstance(distribution, FloatDistribution)
        if distribution.log:
            import math

            return math.exp(self._rng.uniform(math.log(distribution.low), math.log(distribution.high)))
        return self._rng.uniform(distribution.low, distribution.high)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def make_sampler(name: str, *, population: int, seed: int | None, objectives: int) -> BaseSampler:
    """The named sampler. NSGA-II and TPE read each trial's ``budget`` constraint (set before it trains)."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "evolution":
        if objectives > 1:
            raise ConfigError(
                "regularized evolution optimises one objective; use --sampler nsga2 for several"
            )
        return RegularizedEvolutionSampler(
            population=population, tournament=max(2, population // 4), seed=seed
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
