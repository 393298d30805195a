"""``.. click-help:: module:group``: every command of a click group, as its own ``--help``.

The reference is rendered from click at each build, so the page says exactly what the
command line prints and cannot drift from it. Each command gets a section titled with its
full invocation; subcommands of a group nest one level deeper.
"""

from __future__ import annotations

import importlib
import inspect

import click
from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles

#: Width the help is wrapped at, whatever terminal builds the docs.
WIDTH = 88
#: Underline characters of the section levels, outermost first (the page title uses ``=``).
LEVELS = "-~^"


def _contexts(command, name, parent=None, depth=0):
    """``(context, depth)`` of ``command`` and, for a group, of each subcommand, in order."""
    settings = {"terminal_width": WIDTH, "max_content_width": WIDTH, **command.context_settings}
    ctx = click.Context(command, info_name=name, parent=parent, **settings)
    yield ctx, depth
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            yield from _contexts(command.get_command(ctx, sub), sub, ctx, depth + 1)


class ClickHelp(Directive):
    """Render the help of a click group and of every command under it."""

    required_arguments = 1
    option_spec = {"prog": directives.unchanged}

    def run(self):
        module, _, attribute = self.arguments[0].partition(":")
        group = getattr(importlib.import_module(module), attribute)
        prog = self.options.get("prog", group.name)
        env = self.state.document.settings.env
        lines: list[str] = []
        for ctx, depth in _contexts(group, prog):
            callback = inspect.unwrap(ctx.command.callback) if ctx.command.callback else None
            if callback is not None:  # rebuild the page when a command's code changes
                env.note_dependency(inspect.getsourcefile(callback))
            if depth:
                title = ctx.command_path
                lines += [title, LEVELS[min(depth, len(LEVELS)) - 1] * len(title), ""]
            lines += [".. code-block:: text", ""]
            lines += [f"   {line}".rstrip() for line in ctx.get_help().splitlines()]
            lines.append("")
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=self.arguments[0]), holder)
        return holder.children


def setup(app):
    app.add_directive("click-help", ClickHelp)
    return {"version": "1", "parallel_read_safe": True}
