"""The command palette (ctrl+p): every action of the workbench, plus each run and checkpoint by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from llmodel_app.tui.tabs import TABS

if TYPE_CHECKING:
    from llmodel_app.tui.app import LLModelApp

Command = tuple[str, str, Callable[[], object]]


def workbench_commands(app: LLModelApp) -> Iterator[Command]:
    """``(name, help, callback)`` for every action, computed from what the workspace holds now."""
    for tab in TABS:
        yield f"Go to {tab.title}", f"show the {tab.title} tab", partial(app.action_show_tab, tab.id)
    yield "Run the quickstart", "tokenizer → dataset → tiny model → first reply", app.action_quickstart
    yield "Refresh the workspace", "list configs, tokenizers, datasets and runs again", app.action_refresh
    yield "Start the engine", "start the workspace's engine if it is not running", app.action_start_engine
    yield "Toggle dark/light theme", "switch the colour theme", app.action_toggle_theme
    yield "Toggle the sidebar", "show or hide the workspace tree", app.action_toggle_sidebar
    yield "Help", "keys and how the workbench is laid out", app.action_help
    yield (
        "Cancel the open run",
        "stop it after its step, with a checkpoint",
        partial(app.run_view_action, "cancel_run"),
    )
    yield (
        "Resume the open run",
        "continue a cancelled or failed run",
        partial(app.run_view_action, "resume_run"),
    )
    yield "More smoothing", "increase the EMA of the run charts", partial(app.run_view_action, "smoothing", 1)
    yield (
        "Less smoothing",
        "decrease the EMA of the run charts",
        partial(app.run_view_action, "smoothing", -1),
    )
    yield "Toggle log scale", "log y axis on the run charts", partial(app.run_view_action, "toggle_log")
    yield (
        "Toggle step/time axis",
        "x axis in steps or training seconds",
        partial(app.run_view_action, "toggle_axis"),
    )
    yield "Start serving for chat", "serve the chosen checkpoint on loopback", app.action_start_chat_server
    yield "Stop the model server", "stop serving (chat and REST)", app.action_stop_serving
    yield "Clear the chat", "forget the conversation", partial(app.chat_action, "clear")
    yield "Copy the chat", "copy the conversation to the clipboard", partial(app.chat_action, "copy")
    yield "Compare all runs", "overlay every run's loss curves", app.action_compare_all
    yield "Fine-tune a model", "full, LoRA or QLoRA on a checkpoint (Launch tab)", app.action_finetune_form
    yield (
        "Train the selected trial's config",
        "export it and pretrain it in full (Evolve tab)",
        app.action_train_trial,
    )
    yield "Quit", "leave the workbench; runs go on", app.action_quit
    for study in app.workspace_data.get("studies", []):
        yield (
            f"Open study {study['name']}",
            "its trials, Pareto front or best so far",
            partial(app.open_study, study["name"]),
        )
    for run in app.workspace_data.get("runs", []):
        yield (
            f"Open run {run['id']}",
            f"{run.get('kind')} · {run.get('status')}",
            partial(app.open_run, run["id"]),
        )
        yield f"Attention of {run['id']}", "its attention snapshots", partial(app.open_attention, run["id"])
        for checkpoint in run.get("checkpoints") or []:
            yield (
                f"Chat with {run['id']} step {checkpoint['step']}",
                "serve this checkpoint and chat",
                partial(app.choose_checkpoint, run["id"], checkpoint["path"]),
            )
            for adapter in checkpoint.get("adapters") or []:
                yield (
                    f"Chat with adapter {adapter['name']}",
                    f"{run['id']} step {checkpoint['step']} + {adapter['name']}",
                    partial(app.choose_checkpoint, run["id"], checkpoint["path"], adapter["name"]),
                )


class WorkbenchCommands(Provider):
    async def discover(self) -> Hits:
        for name, help_text, callback in workbench_commands(cast("LLModelApp", self.app)):
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in workbench_commands(cast("LLModelApp", self.app)):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
