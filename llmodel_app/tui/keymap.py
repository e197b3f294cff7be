"""Every key binding of the workbench, in one place (shown in the footer and the help screen)."""

from __future__ import annotations

from textual.binding import Binding, BindingType

# The ctrl shortcuts are priority bindings: they work wherever the focus is, a text field included (Input binds
# ctrl+e to "end" itself). Printable keys (the digits, ?) reach the app only when no field keeps them.
APP: list[BindingType] = [
    Binding("ctrl+q", "quit", "Quit", priority=True),
    Binding("ctrl+b", "toggle_sidebar", "Sidebar", priority=True),
    Binding("f1", "help", "Help", priority=True),
    Binding("question_mark", "help", "Help", show=False),
    Binding("ctrl+t", "toggle_theme", "Theme", priority=True),
    Binding("ctrl+r", "refresh", "Refresh", priority=True),
    Binding("ctrl+e", "start_engine", "Start engine", show=False, priority=True),
]  # the digit keys of the tabs: tabs.tab_bindings()

# Pairs of keys share one label in the footer (a group), so that a 100-column footer still has room for the
# app's own keys (ctrl+b above all).
SMOOTH = Binding.Group("Smooth ±", compact=True)
LAYER = Binding.Group("Layer", compact=True)
HEAD = Binding.Group("Head", compact=True)
SNAPSHOT = Binding.Group("Snapshot", compact=True)

RUN_VIEW: list[BindingType] = [
    Binding("s", "smoothing(1)", "Smooth+", group=SMOOTH),
    Binding("S", "smoothing(-1)", "Smooth-", group=SMOOTH),
    Binding("g", "toggle_log", "Log scale"),
    Binding("x", "toggle_axis", "Step/time"),
    Binding("c", "cancel_run", "Cancel run"),
    Binding("r", "resume_run", "Resume run"),
]

ATTENTION: list[BindingType] = [
    Binding("left_square_bracket", "layer(-1)", "Layer-", group=LAYER),
    Binding("right_square_bracket", "layer(1)", "Layer+", group=LAYER),
    Binding("comma", "head(-1)", "Head-", group=HEAD),
    Binding("full_stop", "head(1)", "Head+", group=HEAD),
    Binding("p", "snapshot(-1)", "Prev step", group=SNAPSHOT),
    Binding("n", "snapshot(1)", "Next step", group=SNAPSHOT),
    Binding("m", "toggle_mean", "Mean of heads"),
]

HEATMAP: list[BindingType] = [
    Binding("up", "cursor(-1, 0)", "Query up", show=False),
    Binding("down", "cursor(1, 0)", "Query down", show=False),
    Binding("left", "cursor(0, -1)", "Key left", show=False),
    Binding("right", "cursor(0, 1)", "Key right", show=False),
]

CHAT: list[BindingType] = [
    Binding("ctrl+s", "stop", "Stop"),
    Binding("ctrl+l", "clear", "Clear"),
    Binding("ctrl+y", "copy", "Copy"),
]

COMPARE: list[BindingType] = [
    Binding("g", "toggle_log", "Log scale"),
    Binding("a", "toggle_all_settings", "All settings"),
]

EVOLVE: list[BindingType] = [
    Binding("t", "train_trial", "Train this config"),
    Binding("o", "open_trial", "Open trial run"),
]

HELP_TEXT = """\
# LLModel workbench

The sidebar lists the workspace: configs, tokenizers, datasets, runs (with their checkpoints, and the adapters
trained on each) and studies. Select a run to open it, a checkpoint or an adapter to chat with it, a config to
edit it, a study to open it in the Evolve tab.

| key | action |
| --- | --- |
| ctrl+p | command palette: every action |
{tab_keys}
| F1, ? | this help |
| ctrl+t | dark / light theme |
| ctrl+r | refresh the workspace |
| ctrl+e | start the engine when it is not running |
| ctrl+b | show / hide the sidebar |
| ctrl+q | quit (runs go on in the engine) |

**Run view**: `s`/`S` more/less EMA smoothing, `g` log scale, `x` step or training-time axis,
`c` cancel the run (it checkpoints first), `r` resume a cancelled or failed run.

**Attention**: `[` `]` layer, `,` `.` head, `m` mean over heads, `n` `p` next/previous snapshot
(in training order); the arrow keys move a cursor over the map and show that query/key pair's weight.

**Chat**: enter sends; `ctrl+s` stops the reply, `ctrl+l` clears, `ctrl+y` copies the conversation. The adapter
list beside the checkpoint picks the base or one of its adapters: the server serves them all, so switching
between them never restarts it.

**Launch**: tokenizer, dataset, pretraining and fine-tuning jobs (full, LoRA or QLoRA on a checkpoint; its
trainable parameters and cost are shown before it starts).

**Compare**: tick two or more runs: their loss curves overlaid, and the settings that differ between them
(`a`: all settings), a fine-tuning run's adapter and base included; `g` log scale.

**Evaluate**: a checkpoint (and adapter), tasks and a limit; results as bars against chance, and every
evaluation of the workspace side by side.

**Evolve**: start a study (space, dataset, objectives, trials, budget, sampler); its trials fill the table live,
beside the Pareto front (several objectives) or the best-so-far curve. On a trial: `o` opens its run,
`t` trains its config in full as a new pretraining run.

**Serve**: the switch starts or stops the REST server; a host other than 127.0.0.1 needs an API key.
"""

CONFIRM: list[BindingType] = [Binding("escape", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

CLOSE: list[BindingType] = [Binding("escape", "dismiss", "Close")]
