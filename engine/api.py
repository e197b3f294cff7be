"""What the engine's HTTP API returns, route by route: the typed results of :class:`engine.client.EngineClient`.

Catalog rows carry more keys as the catalog grows; each type names the ones front ends rely on.
"""

from __future__ import annotations

from typing import Any, TypedDict


class Health(TypedDict):
    status: str
    workspace: str


class ActiveJob(TypedDict):
    run_id: str
    kind: str
    pid: int | None
    status: str


class Summary(TypedDict):
    configs: int
    tokenizers: int
    datasets: int
    adapters: int
    runs: dict[str, int]  # status → how many
    runs_total: int


class WorkspaceInfo(TypedDict):
    path: str
    summary: Summary
    jobs: list[ActiveJob]


class Run(TypedDict, total=False):
    id: str
    kind: str
    status: str
    parent_id: str | None
    run_dir: str
    created: float
    started: float | None
    finished: float | None
    step: int
    total_steps: int | None
    metrics: dict[str, float]
    info: dict[str, Any]
    error: str | None
    pid: int | None
    loss: float | None
    val_loss: float | None


class Checkpoint(TypedDict):
    step: int
    path: str
    best: bool
    created: float | None


class Sample(TypedDict):
    step: int
    time: float
    prompt: str
    text: str


class RunDetail(Run, total=False):
    config: dict[str, Any]
    checkpoints: list[Checkpoint]
    samples: list[Sample]
    event_offset: int


class Adapter(TypedDict, total=False):
    name: str
    path: str
    run_id: str | None
    method: str
    base_checkpoint: str
    base_sha256: str
    rank: int
    alpha: float
    targets: list[str]
    dataset: str | None
    metrics: dict[str, float]
    meta: dict[str, Any]
    created: float


class ListedCheckpoint(TypedDict):
    """A checkpoint still on disk and complete, as the workspace listing gives it."""

    step: int
    path: str
    created: float | None
    best: bool
    latest: bool  # the run's newest usable checkpoint: what its run folder resolves to
    adapters: list[Adapter]  # trained on this checkpoint


class ListedRun(Run):
    checkpoints: list[ListedCheckpoint]


class Study(TypedDict, total=False):
    name: str
    storage: str
    run_id: str | None
    settings: dict[str, Any]
    created: float
    updated: float
    trials: int
    complete: int
    running: int


class WorkspaceListing(TypedDict):
    path: str
    summary: Summary
    jobs: list[ActiveJob]
    runs: list[ListedRun]
    adapters: list[Adapter]
    configs: list[dict[str, Any]]
    tokenizers: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    studies: list[Study]


class Comparison(TypedDict):
    runs: dict[str, dict[str, Any]]  # run id → kind, status, step, flattened config, metrics, evaluations
    differing: list[str]  # the config keys whose values differ


class EvalResult(TypedDict, total=False):
    run_id: str
    model: str
    checkpoint: str | None
    step: int | None
    adapter: str | None
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int | None
    chance: float | None
    settings: dict[str, Any]
    created: float


class RunEvaluation(TypedDict):
    step: int
    name: str
    value: float
    created: float | None


class AttentionSnapshot(TypedDict):
    step: int
    path: str
    layers: int
    heads: int
    tokens: list[str]
    created: float | None


class AttentionMap(TypedDict):
    step: int
    tokens: list[str]
    weights: list[Any]  # layers × heads × tokens × tokens


class RunLogs(TypedDict):
    run_id: str
    lines: list[str]


class TaskInfo(TypedDict):
    name: str
    kind: str
    description: str
    chance: str
    needs_data: bool
    data_layout: str


class Trial(TypedDict, total=False):
    number: int
    run_id: str | None
    state: str
    params: dict[str, Any]
    objectives: dict[str, float]
    reason: str | None
    updated: float


class StudyReport(TypedDict):
    name: str
    settings: dict[str, Any]
    trials: list[dict[str, Any]]
    pareto_front: list[int]
    best_so_far: list[Any]
    importances: dict[str, float]


class TrialExport(TypedDict):
    trial: int
    name: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    model_path: str
    train_path: str
    data_path: str
    tokenizer_path: str | None


class ServeStatus(TypedDict, total=False):
    running: bool
    pid: int
    pid_start: int | None
    model: str
    host: str
    port: int
    url: str
    auth: bool
    started: float
    adapters: dict[str, str]
    health: str
    requests: int | None
    error: str
    stopped: int


class Submitted(TypedDict):
    run_id: str
    status: str


class Resumed(TypedDict):
    run_id: str
    status: str
    offset: int  # the event line the resumed job starts writing at


class Cancelled(TypedDict):
    run_id: str
    status: str  # "cancelled" (it was queued) or "cancelling" (it checkpoints and stops)


Metrics = dict[str, list[list[float]]]  # name → [step, value] points in step order
Event = dict[str, Any]
