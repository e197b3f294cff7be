"""The workbench's tabs, in order: a new tab is one entry here (its digit key, its palette entry, its focus and
what the app routes to it follow from the entry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from textual.binding import Binding
from textual.widget import Widget

from llmodel_app.tui.components.attention_view import AttentionView
from llmodel_app.tui.components.chat_pane import ChatPane
from llmodel_app.tui.components.compare_view import CompareView
from llmodel_app.tui.components.config_editor import ConfigEditor
from llmodel_app.tui.components.evaluate_view import EvaluateView
from llmodel_app.tui.components.evolve_view import EvolveView
from llmodel_app.tui.components.job_launcher import JobLauncher
from llmodel_app.tui.components.rest_panel import RestPanel
from llmodel_app.tui.components.run_view import RunView
from llmodel_app.tui.components.welcome_panel import WelcomePanel

TAB_KEYS = "1234567890"  # the digit keys, in the order of the tabs (0 is the tenth)


class ShowsWorkspace(Protocol):
    def show_workspace(self, data: dict[str, Any]) -> None: ...


class FollowsJobs(Protocol):
    @property
    def following(self) -> str | None: ...

    def job_event(self, event: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Tab:
    """One tab: ``widget`` builds its view (``view`` its class, ``view_id`` its id); ``focus`` is the selector of
    what takes the focus when it shows (None: the tab bar, where the digit keys keep switching tabs);
    ``lists_workspace`` whether each fresh listing goes to its view; ``follows_jobs`` whether the events of the
    job it submitted last go to it; ``lazy`` whether it mounts after the first frame."""

    id: str
    title: str
    view: type[Widget]
    view_id: str
    focus: str | None = None
    lists_workspace: bool = False
    follows_jobs: bool = False
    lazy: bool = True

    def widget(self) -> Widget:
        """A new view of this tab."""
        return self.view(id=self.view_id)


TABS: tuple[Tab, ...] = (
    Tab("home", "Home", WelcomePanel, "welcome", lazy=False),
    Tab("run", "Run", RunView, "run-view", focus="#run-view"),
    Tab("attention", "Attention", AttentionView, "attention-view", focus="#heatmap"),
    Tab("chat", "Chat", ChatPane, "chat-pane", lists_workspace=True),
    Tab("serve", "Serve", RestPanel, "rest-panel", lists_workspace=True),
    Tab("config", "Config", ConfigEditor, "config-editor"),
    Tab("launch", "Launch", JobLauncher, "job-launcher", lists_workspace=True, follows_jobs=True),
    Tab("compare", "Compare", CompareView, "compare-view", focus="#compare-runs", lists_workspace=True),
    Tab(
        "evaluate",
        "Evaluate",
        EvaluateView,
        "evaluate-view",
        focus="#eval-results",
        lists_workspace=True,
        follows_jobs=True,
    ),
    Tab(
        "evolve",
        "Evolve",
        EvolveView,
        "evolve-view",
        focus="#evolve-table",
        lists_workspace=True,
        follows_jobs=True,
    ),
)
BY_ID = {tab.id: tab for tab in TABS}


def tab_bindings() -> list[Binding]:
    """A digit key per tab, in order."""
    return [
        Binding(key, f"show_tab('{tab.id}')", tab.title, show=False)
        for key, tab in zip(TAB_KEYS, TABS, strict=False)
    ]


def tab_keys_line() -> str:
    """``1 … 9, 0 | Home · Run · …``: the help's row of the digit keys."""
    keys = TAB_KEYS[: len(TABS)]
    return f"| {keys[0]} … {keys[-2]}, {keys[-1]} | {' · '.join(tab.title for tab in TABS)} |"
