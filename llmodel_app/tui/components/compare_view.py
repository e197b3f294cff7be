"""Two or more runs side by side: their loss curves overlaid (a legend above them) and the settings that differ
(``a``: all of them), the LoRA and base settings of fine-tuning runs included."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, SelectionList, Static
from textual.worker import Worker

from engine.kinds import TRAINING_KINDS
from llmodel_app.tui import keymap
from llmodel_app.tui.components.metric_chart import MetricChart, legend
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.shared import workbench


class CompareView(Horizontal):
    BINDINGS: ClassVar[list[BindingType]] = keymap.COMPARE
    DEFAULT_CSS = """
    CompareView #compare-runs { width: 36; border: round $primary-darken-2; }
    CompareView #compare-main { width: 1fr; }
    CompareView #compare-legend { height: auto; padding: 0 1; }
    CompareView #compare-charts { height: 2fr; }
    CompareView #compare-table { height: 1fr; border: round $primary-darken-2; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_ids: list[str] = []
        self.log_scale = False
        self.curves: dict[str, dict[str, list[list[float]]]] = {}
        self.compared: dict[str, Any] = {}  # EngineClient.compare, with each fine-tuning run's own settings
        self.all_settings = False  # every setting in the table, not only those that differ

    def compose(self) -> ComposeResult:
        yield SelectionList[str](id="compare-runs")
        with Vertical(id="compare-main"):
            yield Label("Tick two or more runs to compare them.", id="compare-title")
            yield Static("", id="compare-legend")
            with Horizontal(id="compare-charts"):
                yield MetricChart("loss", "train loss", id="compare-loss")
                yield MetricChart("val_loss", "val loss", id="compare-val_loss")
            yield DataTable(id="compare-table", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#compare-runs").border_title = "runs"
        self.query_one("#compare-table").border_title = "settings that differ (a: all)"
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        """Mounted lazily (once the widgets inside have mounted too): take what the app already knows."""
        self.show_workspace(workbench(self).workspace_data)

    def show_workspace(self, data: dict[str, Any]) -> None:
        self.set_runs(data.get("runs", []))

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        ids = [r["id"] for r in runs if r.get("kind") in TRAINING_KINDS]
        if ids == self.run_ids:
            return
        self.run_ids = ids
        selection = self.query_one("#compare-runs", SelectionList)
        chosen = set(selection.selected)
        selection.clear_options()
        selection.add_options([(run_id, run_id, run_id in chosen) for run_id in ids])

    def select(self, run_ids: list[str]) -> None:
        selection = self.query_one("#compare-runs", SelectionList)
        for run_id in run_ids:
            selection.select(run_id)

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        chosen = list(event.selection_list.selected)
        if len(chosen) >= 2:
            self.query_one("#compare-title", Label).update(f"comparing {len(chosen)} runs")
            self._load(chosen)
        else:
            self.query_one("#compare-title", Label).update("Tick two or more runs to compare them.")

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def _load(self, run_ids: list[str]) -> None:
        client = workbench(self).client
        if client is None:
            return
        compared: dict[str, Any] = dict(client.compare(run_ids))
        for run_id, run in compared.get("runs", {}).items():
            # A fine-tuning run's adapter and base are in its record's info, not its training config.
            run["config"] = {**run.get("config", {}), **finetune_settings(dict(client.run(run_id)))}
        curves = {run_id: client.metrics(run_id, ["loss", "val_loss"], max_points=500) for run_id in run_ids}
        self.app.call_from_thread(self.show, compared, curves)

    def show(self, compared: dict[str, Any], curves: dict[str, dict[str, list[list[float]]]]) -> None:
        self.compared, self.curves = compared, curves
        self._charts()
        self._table()

    def _table(self) -> None:
        """The settings that differ (every one with ``all_settings``), then the final losses."""
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        runs = list(self.compared.get("runs", {}).values())
        table.add_columns("setting", *self.compared.get("runs", {}))
        rows = setting_rows([run.get("config") or {} for run in runs])
        shown = [(key, values) for key, values, differ in rows if differ or self.all_settings]
        for key, values in shown:
            table.add_row(key, *values)
        for metric in ("loss", "val_loss"):
            table.add_row(f"final {metric}", *(_fmt((run.get("metrics") or {}).get(metric)) for run in runs))
        differing = sum(differ for _, _, differ in rows)
        differ = f"{differing} setting{'s' * (differing != 1)} that differ{'s' * (differing == 1)}"
        table.border_title = (
            f"all {len(rows)} settings (a: the {differ})"
            if self.all_settings
            else f"{differ} (a: all {len(rows)})"
        )

    def _charts(self) -> None:
        self.query_one("#compare-legend", Static).update(legend(list(self.curves)))
        for metric in ("loss", "val_loss"):
            series = [
                (
                    run_id,
                    [float(p[0]) for p in data.get(metric, [])],
                    [float(p[1]) for p in data.get(metric, [])],
                )
                for run_id, data in self.curves.items()
            ]
            self.query_one(f"#compare-{metric}", MetricChart).show_many(series, log_scale=self.log_scale)

    def action_toggle_all_settings(self) -> None:
        self.all_settings = not self.all_settings
        if self.compared:
            self._table()

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self._charts()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)


def finetune_settings(run: dict[str, Any]) -> dict[str, Any]:
    """A fine-tuning run's adapter settings (``adapter.rank``, ...) and its base checkpoint, from its record's
    info; nothing for a pretraining run."""
    info = run.get("info") or {}
    settings = {f"adapter.{key}": value for key, value in (info.get("adapter") or {}).items()}
    if info.get("init_from"):
        settings["base checkpoint"] = info["init_from"]
    return settings


def setting_value(value: Any) -> str:
    """A setting as the table shows it: floats to 6 significant digits (3e-4 reads 0.0003, never
    0.00030000000000000003), lists comma-joined, a missing one as —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(setting_value(v) for v in value)
    return str(value)


def setting_rows(configs: list[dict[str, Any]]) -> list[tuple[str, list[str], bool]]:
    """``(key, the value of each run as shown, whether they differ)`` for every key any run has, sorted; values
    that read the same once rounded are the same."""
    keys = sorted({key for config in configs for key in config})
    rows = []
    for key in keys:
        values = [setting_value(config.get(key)) for config in configs]
        rows.append((key, values, len(set(values)) > 1))
    return rows


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "—"
