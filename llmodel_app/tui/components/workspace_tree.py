"""The sidebar: configs, tokenizers, datasets, runs (live status, checkpoints underneath, the adapters trained on
each checkpoint under it) and studies."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from llmodel_app.tui.messages import CheckpointSelected, ConfigSelected, RunSelected, StudySelected

STATUS_STYLE = {
    "queued": ("◌", "yellow"),
    "running": ("●", "green"),
    "completed": ("✓", "blue"),
    "failed": ("✗", "red"),
    "failed_resumable": ("↻", "red"),
    "cancelled": ("■", "magenta"),
}


def study_label(study: dict[str, Any]) -> Text:
    """``arch  5/12 ●``: trials complete of the study's count, and a dot while trials run."""
    total = (study.get("settings") or {}).get("n_trials", "?")
    label = Text.assemble(study["name"], (f" {study.get('complete', 0)}/{total}", "dim"))
    if study.get("running"):
        label.append(" ●", style="green")
    return label


def run_label(run: dict[str, Any]) -> Text:
    """``● run-id  12/40``: the status as a coloured glyph, then the step (the run view has the metrics)."""
    glyph, colour = STATUS_STYLE.get(run.get("status", ""), ("?", "white"))
    label = Text.assemble((f"{glyph} ", colour), run["id"])
    step, total = run.get("step"), run.get("total_steps")
    if step:
        label.append(f" {step}/{total}" if total else f" {step}", style="dim")
    return label


class WorkspaceTree(Tree[dict[str, Any]]):
    """The workspace's contents; selecting a node posts what to open."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("workspace", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self.runs: dict[str, dict[str, Any]] = {}
        self._run_nodes: dict[str, TreeNode[dict[str, Any]]] = {}
        self._sections: dict[str, TreeNode[dict[str, Any]]] = {}

    def on_mount(self) -> None:
        for key, title in (
            ("configs", "Configs"),
            ("tokenizers", "Tokenizers"),
            ("datasets", "Datasets"),
            ("runs", "Runs"),
            ("studies", "Studies"),
        ):
            self._sections[key] = self.root.add(
                title, data={"kind": "section", "name": key}, expand=key in ("runs", "studies")
            )

    def show_workspace(self, data: dict[str, Any]) -> None:
        """Rebuild the sections from fresh listings, keeping which runs were expanded."""
        for key in ("configs", "tokenizers", "datasets"):
            node = self._sections[key]
            node.remove_children()
            items = data.get(key, [])
            node.set_label(Text.assemble(key.capitalize(), (f" {len(items)}", "dim")))
            for item in items:
                # The node's kind last: a listing's own "kind" (a config's is "model") must not replace it.
                node.add_leaf(item["name"], data={**item, "kind": key[:-1]})
        expanded = {run_id for run_id, node in self._run_nodes.items() if node.is_expanded}
        runs_node = self._sections["runs"]
        runs_node.remove_children()
        self.runs, self._run_nodes = {}, {}
        runs = data.get("runs", [])
        runs_node.set_label(Text.assemble("Runs", (f" {len(runs)}", "dim")))
        for run in runs:
            self.runs[run["id"]] = run
            checkpoints = run.get("checkpoints") or []
            node = runs_node.add(
                run_label(run), data={"kind": "run", "id": run["id"]}, expand=run["id"] in expanded
            )
            if not checkpoints:
                node.allow_expand = False
            for checkpoint in checkpoints:
                name = Text(f"step {checkpoint['step']}" + (" ★ best" if checkpoint.get("best") else ""))
                adapters = checkpoint.get("adapters") or []
                if not adapters:
                    node.add_leaf(name, data={"kind": "checkpoint", "id": run["id"], **checkpoint})
                    continue
                name.append(f" +{len(adapters)}", style="dim")
                parent = node.add(
                    name, data={"kind": "checkpoint", "id": run["id"], **checkpoint}, expand=True
                )
                for adapter in adapters:
                    parent.add_leaf(
                        Text.assemble(
                            ("⧉ ", "cyan"),
                            adapter["name"],
                            (f" {adapter.get('method', '')} r{adapter.get('rank', '?')}", "dim"),
                        ),
                        data={
                            "kind": "adapter",
                            "id": run["id"],
                            "path": checkpoint["path"],
                            "adapter": adapter["name"],
                        },
                    )
            self._run_nodes[run["id"]] = node
        studies = data.get("studies", [])
        studies_node = self._sections["studies"]
        studies_node.remove_children()
        studies_node.set_label(Text.assemble("Studies", (f" {len(studies)}", "dim")))
        for study in studies:
            studies_node.add_leaf(study_label(study), data={"kind": "study", "name": study["name"]})

    def update_run(self, run_id: str, **fields: Any) -> bool:
        """Live status and step from the event stream; False when the run is not listed yet."""
        run = self.runs.get(run_id)
        node = self._run_nodes.get(run_id)
        if run is None or node is None:
            return False
        metrics = fields.pop("metrics", None)
        run.update({k: v for k, v in fields.items() if v is not None})
        if metrics:
            run["metrics"] = {**(run.get("metrics") or {}), **metrics}
        node.set_label(run_label(run))
        return True

    def select_run(self, run_id: str) -> bool:
        """Move the cursor to a run and select it, as Enter on it would; False when it is not listed."""
        node = self._run_nodes.get(run_id)
        if node is None:
            return False
        self.select_node(node)
        return True

    def on_tree_node_selected(self, event: Tree.NodeSelected[dict[str, Any]]) -> None:
        data = event.node.data or {}
        kind = data.get("kind")
        if kind == "run":
            self.post_message(RunSelected(data["id"]))
        elif kind == "checkpoint":
            self.post_message(CheckpointSelected(data["id"], data["path"]))
        elif kind == "adapter":
            self.post_message(CheckpointSelected(data["id"], data["path"], data["adapter"]))
        elif kind == "study":
            self.post_message(StudySelected(data["name"]))
        elif kind == "config":
            self.post_message(ConfigSelected(data["name"], data.get("data") or {}))
