"""The LLModel workbench (Textual): ``llmodel`` with no subcommand opens it.

The app composes the widgets and routes messages between them; every engine request runs in a worker thread
through ``EngineClient``, and the endless event streams run in daemon feeds (``feed.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Header, TabbedContent, TabPane, Tabs
from textual.worker import Worker

from engine.specs import quickstart_spec
from llmodel_app.tui import keymap
from llmodel_app.tui.commands import WorkbenchCommands
from llmodel_app.tui.components.attention_view import AttentionView
from llmodel_app.tui.components.chat_pane import ChatPane
from llmodel_app.tui.components.compare_view import CompareView
from llmodel_app.tui.components.config_editor import ConfigEditor
from llmodel_app.tui.components.evolve_view import EvolveView
from llmodel_app.tui.components.help_screen import HelpScreen
from llmodel_app.tui.components.job_launcher import JobLauncher
from llmodel_app.tui.components.model_picker import model_choices
from llmodel_app.tui.components.rest_panel import RestPanel
from llmodel_app.tui.components.run_view import RunView
from llmodel_app.tui.components.welcome_panel import WelcomePanel
from llmodel_app.tui.components.workspace_tree import WorkspaceTree
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.feed import ClientFactory, EngineLink, connect_engine
from llmodel_app.tui.messages import (
    AdapterPicked,
    CheckpointSelected,
    ConfigSelected,
    FieldLeft,
    JobSubmitted,
    ModelPicked,
    RunSelected,
    ServingChanged,
    StudySelected,
    WorkspaceLoaded,
)
from llmodel_app.tui.model_server import same_model
from llmodel_app.tui.shared import require_client
from llmodel_app.tui.tabs import BY_ID, TABS, FollowsJobs, ShowsWorkspace, tab_bindings
from llmodel_app.tui.workbench_state import WorkbenchState, load_state, save_state

if TYPE_CHECKING:
    from engine.client import EngineClient

PUMP_SECONDS = 0.25
ViewT = TypeVar("ViewT", bound=Widget)


class LLModelApp(App[None]):
    """The workbench: a workspace tree on the left, a tab per task on the right."""

    TITLE = "LLModel"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [*keymap.APP, *tab_bindings()]
    COMMANDS = App.COMMANDS | {WorkbenchCommands}

    def __init__(
        self,
        workspace: Path,
        *,
        connect: ClientFactory = connect_engine,
        start_engine: bool = True,
        quickstart_options: dict[str, Any] | None = None,
        poll_serving: bool = True,
    ) -> None:
        super().__init__()
        # Classes of the screen by its width (app.tcss): a narrower sidebar below 120 columns, none below 90.
        self.HORIZONTAL_BREAKPOINTS = [(0, "-cramped"), (90, "-narrow"), (120, "-wide")]
        self.workspace = Path(workspace).resolve()
        self.connect = connect
        self.start_engine = start_engine
        self.quickstart_options = quickstart_options or {}
        self.poll_serving = poll_serving
        self.client: EngineClient | None = None
        self.connected = False
        self.was_lost = False
        self.workspace_data: dict[str, Any] = {}
        self.saved_configs: dict[str, dict[str, Any]] = {}
        self.serve_key: str | None = None
        self._link: EngineLink | None = None
        # The run open in the run view (a lazy attention view opens it too); the checkpoint picked for the chat,
        # the typed-text attention and serving; a saved config for the (lazy) editor to open.
        self.current_run: str | None = None
        self.chosen_model: str | None = None
        # The adapter of the picked checkpoint that answers the chat (None: the base).
        self.chosen_adapter: str | None = None
        self.study_to_open: str | None = None  # the study the (lazy) Evolve tab opens when it mounts
        self.config_to_edit: tuple[str, dict[str, Any]] | None = None
        self._refresh_pending = False
        self._view_state = load_state(self.workspace)  # what to reopen, then what was last saved
        self._view_restored = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield WorkspaceTree(id="sidebar")
            with TabbedContent(id="tabs", initial="home"):
                for tab in TABS:
                    # The hidden tabs mount after the first frame (Lazy): start-up paints sooner. Until then they
                    # are missing from queries (``view`` returns None) and pull the app's state when they mount.
                    with TabPane(tab.title, id=tab.id):
                        yield Lazy(tab.widget()) if tab.lazy else tab.widget()
        yield Footer()

    def view(self, kind: type[ViewT]) -> ViewT | None:
        """The app's one widget of ``kind``, or None until it has mounted (a lazy tab) or while shutting down.

        A view that mounts later reads what it needs from the app in its ``on_mount``.
        """
        if not self.screen_stack:
            return None  # closing
        found = self.main.query(kind)
        return found.first() if found and found.first().is_mounted else None

    @property
    def composed(self) -> bool:
        """True while the workbench's screen is up: not before it is composed, nor once closing has begun."""
        return bool(self.screen_stack) and bool(self.screen_stack[0].query(WorkspaceTree))

    @property
    def main(self) -> Screen[Any]:
        """The workbench's own screen (queries must not land on a modal pushed above it)."""
        return self.screen_stack[0] if self.screen_stack else self.screen

    def on_mount(self) -> None:
        # The tab decides the focus, never the other way: a pane whose widget takes the focus would otherwise
        # bring itself to the front, late, after the user has already moved on to another tab.
        for pane in self.main.query(TabPane):
            pane.disable_messages(TabPane.Focused)
        self.sub_title = f"{self.workspace} · engine ◌ connecting…"
        self._link = EngineLink(self.workspace, self.connect, start=self.start_engine).start()
        self.set_interval(PUMP_SECONDS, self._pump)

    def on_unmount(self) -> None:
        if self._link is not None:
            self._link.stop()

    # -- the engine link -------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Apply what the engine link has read since the last tick: connection changes and workspace events."""
        if self._link is None or not self.composed:
            return  # not composed yet, or already closing
        live: dict[str, dict[str, Any]] = {}
        followers: dict[str, list[Any]] | None = None  # looked up once a tick, at the first event
        for kind, payload in self._link.drain():
            if kind == "connected":
                self._connected(payload)
            elif kind in ("lost", "error"):
                self._lost(str(payload))
            elif kind == "event":
                if followers is None:
                    followers = self._followers()
                self._workspace_event(payload, live, followers)
        tree = self.main.query_one(WorkspaceTree)
        for run_id, fields in live.items():
            if not tree.update_run(run_id, **fields):
                self._refresh_pending = True
        if self._refresh_pending and self.client is not None:
            self._refresh_pending = False
            self.refresh_workspace()

    def _connected(self, client: EngineClient) -> None:
        self.client, self.connected = client, True
        record = getattr(client, "record", None)
        where = f" pid {record.pid} at {record.url}" if record is not None else ""
        self.sub_title = f"{self.workspace} · engine ● connected{where}"
        if self.was_lost:
            self.notify("Reconnected to the engine.", title="Engine")
            self.was_lost = False
            run_view = self.view(RunView)
            if run_view is not None and run_view.run_id:
                run_view.open_run(run_view.run_id, client)
        self._refresh_pending = True

    def _lost(self, reason: str) -> None:
        if not self.connected and self.was_lost:
            return
        first_attempt = not self.connected and not self.was_lost
        self.client, self.connected, self.was_lost = None, False, True
        self.sub_title = f"{self.workspace} · engine ✗ not connected — retrying"
        if not self.workspace_data:  # nothing listed yet: the home tab says why, rather than "connecting"
            self.main.query_one(WelcomePanel).show_waiting(
                f"the engine is not reachable ({reason}); retrying — ctrl+e starts it"
            )
        hint = (
            ""
            if self.start_engine and first_attempt
            else " It reconnects when the engine is back; ctrl+e starts it."
        )
        self.notify(f"{reason}.{hint}", title="Engine unavailable", severity="error", timeout=8)

    def _followers(self) -> dict[str, list[Any]]:
        """run id → what follows that run's events: the quickstart's panel, the job a form submitted last. Looked
        up once a tick, not once an event: a fast training run sends hundreds of events a second."""
        followers: dict[str, list[Any]] = {}
        welcome = self.main.query_one(WelcomePanel)
        if welcome.quickstart_run:
            followers.setdefault(welcome.quickstart_run, []).append(welcome.quickstart_event)
        for tab in TABS:
            view = self.view(tab.view) if tab.follows_jobs else None
            following = cast(FollowsJobs, view)
            if view is not None and following.following:
                followers.setdefault(following.following, []).append(following.job_event)
        return followers

    def _workspace_event(
        self, event: dict[str, Any], live: dict[str, dict[str, Any]], followers: dict[str, list[Any]]
    ) -> None:
        """Fold one workspace event into the tree (coalesced per run), the studies, and the views that follow
        its run."""
        run_id, kind = event.get("run_id"), event.get("type")
        if not run_id:
            return
        fields = live.setdefault(run_id, {})
        if kind == "job":
            fields["status"] = event.get("status")
            self._refresh_pending = True
        elif kind == "status":
            fields.update(
                {k: event[k] for k in ("status", "step", "total_steps") if event.get(k) is not None}
            )
        elif kind == "step":
            fields["step"] = event.get("step")
            if isinstance(event.get("loss"), (int, float)):
                fields["metrics"] = {"loss": event["loss"]}
        elif kind == "checkpoint":
            self._refresh_pending = True
        elif kind == "attention":
            attention = self.view(AttentionView)
            if attention is not None and attention.run_id == run_id and self.client is not None:
                attention.open_run(run_id, self.client, force=True)
        elif kind in ("trial", "study"):
            self._refresh_pending = True  # the sidebar's studies and their counts
            evolve = self.view(EvolveView)
            if evolve is not None:
                evolve.study_event(event)
        for follow in followers.get(run_id, ()):
            follow(event)

    @work(thread=True, exclusive=True, exit_on_error=False, group="workspace")
    def refresh_workspace(self) -> None:
        """Fetch the workspace's listing (one request, in a worker): runs with their usable checkpoints and the
        adapters on each, configs, tokenizers, datasets, adapters, studies."""
        client = self.client
        if client is not None:
            self.post_message(WorkspaceLoaded(dict(client.workspace_listing())))

    def on_workspace_loaded(self, message: WorkspaceLoaded) -> None:
        data = self.workspace_data = message.data
        if not self.composed:
            return  # the listing came back while the app was closing
        self.main.query_one(WorkspaceTree).show_workspace(data)
        welcome = self.main.query_one(WelcomePanel)
        for job in data.get("jobs", []):
            if job.get("kind") == "quickstart" and welcome.quickstart_run is None:
                welcome.follow_quickstart(job["run_id"])  # reopened while the quickstart runs
        welcome.show_summary(data)
        for tab in TABS:
            view = self.view(tab.view) if tab.lists_workspace else None
            if view is not None:
                cast(ShowsWorkspace, view).show_workspace(data)
        if not self._view_restored:
            self._restore_view(data)

    # -- the view kept across sessions ---------------------------------------------------------------------

    def _restore_view(self, data: dict[str, Any]) -> None:
        """Reopen the run, picked checkpoint and tab of the last session on this workspace (at the first listing,
        and only what the user has not chosen meanwhile)."""
        saved, runs = self._view_state, data.get("runs", [])
        listed = [path for _, path in model_choices(runs)]
        if saved.model and self.chosen_model is None and any(same_model(p, saved.model) for p in listed):
            self.pick_model(saved.model)
        tabs = self.main.query_one(TabbedContent)
        untouched = tabs.active == "home" and self.current_run is None
        if untouched and saved.run is not None and saved.run in {run["id"] for run in runs}:
            self.open_run(saved.run, show=False)
            self.action_show_tab(saved.tab)
        elif untouched and saved.tab not in ("run", "attention"):
            self.action_show_tab(saved.tab)
        self._view_restored = True
        self._remember_view()

    def _remember_view(self) -> None:
        """Save the open run, tab and picked checkpoint when they changed (not before the last ones are back)."""
        if not self._view_restored or not self.composed:
            return
        state = WorkbenchState(
            run=self.current_run,
            tab=self.main.query_one(TabbedContent).active or "home",
            model=self.chosen_model,
        )
        if state != self._view_state:
            self._view_state = state
            save_state(self.workspace, state)

    # -- routing -------------------------------------------------------------------------------------------

    def on_run_selected(self, message: RunSelected) -> None:
        self.open_run(message.run_id)

    def on_checkpoint_selected(self, message: CheckpointSelected) -> None:
        self.choose_checkpoint(message.run_id, message.path, message.adapter)

    def on_model_picked(self, message: ModelPicked) -> None:
        self.pick_model(message.path)

    def on_adapter_picked(self, message: AdapterPicked) -> None:
        self.chosen_adapter = message.adapter

    def on_study_selected(self, message: StudySelected) -> None:
        self.open_study(message.name)

    def on_config_selected(self, message: ConfigSelected) -> None:
        if not message.data:
            self.notify(f"config {message.name} could not be read", severity="warning", title="Config")
            return
        self.config_to_edit = (message.name, message.data)  # the editor opens it when it mounts
        editor = self.view(ConfigEditor)
        if editor is not None:
            editor.open_saved(message.name, message.data)
        self.action_show_tab("config")

    def on_job_submitted(self, message: JobSubmitted) -> None:
        self.notify(f"queued {message.kind} job {message.run_id}", title="Job submitted")
        self._refresh_pending = True
        if message.kind == "quickstart":
            self.main.query_one(WelcomePanel).follow_quickstart(message.run_id)
        elif message.kind in ("pretrain", "finetune"):
            self.open_run(message.run_id)

    def on_serving_changed(self, message: ServingChanged) -> None:
        chat = self.view(ChatPane)
        if chat is not None:
            chat.serving_changed(message.status)

    def on_field_left(self, message: FieldLeft) -> None:
        message.stop()
        self.main.query_one(Tabs).focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == event.tabbed_content.active:  # not a tab the user has already left again
            self._focus_tab(event.pane.id or "")
        self._remember_view()

    def _focus_tab(self, tab: str) -> None:
        """Keys go where the eye goes: the run view's and the heatmap's keys work as soon as their tab shows."""
        target = BY_ID[tab].focus if tab in BY_ID else None
        if target and self.main.query(target):
            self.main.query_one(target).focus()
        else:
            self.main.query_one(Tabs).focus()  # not an input: the digit keys keep switching tabs

    def on_button_pressed(self, event: Any) -> None:
        if event.button.id == "quickstart":
            self.action_quickstart()

    def open_run(self, run_id: str, *, show: bool = True) -> None:
        """Open ``run_id`` in the run and attention views; ``show`` brings the run tab forward."""
        if self.client is None:
            self.notify("not connected to the engine", severity="warning")
            return
        self.current_run = run_id
        for view in (self.view(RunView), self.view(AttentionView)):
            if view is not None:
                view.open_run(run_id, self.client)
        if show:
            self.action_show_tab("run")  # which focuses the run view, so that its keys work at once
        self._remember_view()

    def open_attention(self, run_id: str) -> None:
        if self.client is not None:
            self.current_run = run_id
            attention = self.view(AttentionView)
            if attention is not None:
                attention.open_run(run_id, self.client)
            self.action_show_tab("attention")
            self._remember_view()

    def choose_checkpoint(self, run_id: str, path: str, adapter: str | None = None) -> None:
        """Pick a checkpoint (and the base or one of its adapters) and go and chat with it."""
        self.pick_model(path)
        self.chosen_adapter = adapter
        chat = self.view(ChatPane)
        if chat is not None:
            chat.choose_adapter(adapter)
        self.action_show_tab("chat")

    def pick_model(self, path: str) -> None:
        """The checkpoint that answers in the chat and the typed-text attention, and that the Serve tab offers."""
        self.chosen_model = path
        for view in (self.view(ChatPane), self.view(RestPanel)):
            if view is not None:
                view.choose_model(path)
        self._remember_view()

    def open_study(self, name: str) -> None:
        """Show study ``name`` in the Evolve tab."""
        self.study_to_open = name
        evolve = self.view(EvolveView)
        if evolve is not None:
            evolve.open_study(name)
        self.action_show_tab("evolve")

    def run_view_action(self, action: str, *args: Any) -> None:
        self.action_show_tab("run")
        run_view = self.view(RunView)
        if run_view is not None:
            getattr(run_view, f"action_{action}")(*args)

    def chat_action(self, action: str) -> None:
        self.action_show_tab("chat")
        chat = self.view(ChatPane)
        if chat is not None:
            getattr(chat, f"action_{action}")()

    # -- actions ---------------------------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        # Nothing stays focused in the tab being hidden; the activated tab chooses the new focus
        # (on_tabbed_content_tab_activated).
        tabs = self.main.query_one(TabbedContent)
        if tabs.active == tab:  # no TabActivated follows: focus what it would have focused
            self._focus_tab(tab)
            return
        self.main.set_focus(None)
        tabs.active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_toggle_sidebar(self) -> None:
        """Show or hide the sidebar; back where the terminal's width puts it, it follows the width again."""
        sidebar = self.main.query_one(WorkspaceTree)
        shown = not sidebar.display
        by_width = not self.main.has_class("-cramped")
        sidebar.set_class(shown and not by_width, "-shown")
        sidebar.set_class(not shown and by_width, "-hidden")

    def action_refresh(self) -> None:
        self._refresh_pending = True

    def action_start_engine(self) -> None:
        if self._link is not None and not self.connected:
            self.notify("starting the engine…", title="Engine")
            self._link.start_engine()

    def action_quickstart(self) -> None:
        self._submit_quickstart()

    @work(thread=True, exclusive=True, exit_on_error=False, group="quickstart")
    def _submit_quickstart(self) -> None:
        spec = quickstart_spec(self.workspace, self.quickstart_options)
        self.post_message(JobSubmitted(require_client(self).submit_job(spec), "quickstart"))

    def action_start_chat_server(self) -> None:
        self.action_show_tab("chat")
        if self.main.query("#chat-serve"):
            self.main.query_one("#chat-serve", Button).press()

    @work(thread=True, exclusive=True, exit_on_error=False, group="rest")
    def action_stop_serving(self) -> None:
        require_client(self).serve_stop()
        self.call_from_thread(self.notify, "model server stopped")

    def action_compare_all(self) -> None:
        compare = self.view(CompareView)
        if compare is None:
            return
        compare.select(compare.run_ids)
        self.action_show_tab("compare")

    def action_finetune_form(self) -> None:
        self.action_show_tab("launch")
        launcher = self.view(JobLauncher)
        if launcher is not None:
            launcher.show_kind("finetune")

    def action_train_trial(self) -> None:
        self.action_show_tab("evolve")
        evolve = self.view(EvolveView)
        if evolve is not None:
            evolve.action_train_trial()

    # -- errors --------------------------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)


def run_workbench(workspace: Path) -> None:
    """Open the workbench on ``workspace`` (the engine starts on demand)."""
    LLModelApp(workspace).run()
