"""`swarm knowledge get|put|list|delete`: shared, versioned knowledge."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..client.types import KnowledgeEntry
from . import output
from .common import Actions, parse_json

if TYPE_CHECKING:
    from rich.console import Console

HELP = "read and write shared knowledge (versioned topics)"


def register(parser: argparse.ArgumentParser) -> None:
    actions = Actions(parser)
    get = actions.add("get", get_entry, "the latest version of a topic, or --version N", "topic")
    get.add_argument("--version", type=int)
    put = actions.add("put", put_entry, "write a new version of a topic", "topic")
    put.add_argument("content", metavar="JSON", help='the content as JSON ("-" reads stdin)')
    put.add_argument("--expected-version", type=int, metavar="N",
                     help="refuse (exit 4) unless the topic is at version N (0: new topic)")
    put.add_argument("--tag", action="append", default=[], help="a tag (repeat for more)")
    ls = actions.add("list", list_entries, "the latest entry of every topic")
    ls.add_argument("--tag", help="only topics with this tag")
    delete = actions.add("delete", delete_entry, "delete a topic (its history stays)", "topic")
    delete.add_argument("--expected-version", type=int, metavar="N")
    actions.done()


def render(con: Console, e: KnowledgeEntry) -> None:
    state = " (deleted)" if e["deleted"] else ""
    tags = f", tags: {', '.join(e['tags'])}" if e["tags"] else ""
    con.print(f"[bold]{output.escape(e['topic'])}[/bold] version {e['version']}{state}, by "
              f"{output.escape(str(e['updated_by']))} at {e['updated_at']}{output.escape(tags)}")
    if not e["deleted"]:
        con.print(output.pretty(e["content"]), markup=False, soft_wrap=True)


def get_entry(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.get_knowledge(args.topic, args.version), "entry",
                          render)


def put_entry(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.put_knowledge(
        args.topic, parse_json(args.content, "the content"),
        expected_version=args.expected_version, tags=args.tag), "entry", render)


def list_entries(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.list_knowledge(args.tag), "entries",
                          lambda con, entries: con.print(output.knowledge_table(entries)))


def delete_entry(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.delete_knowledge(args.topic, args.expected_version),
                          "entry", render)
