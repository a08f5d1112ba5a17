"""`swarm task add|list|show|cancel|split|answer`: the work queue from the command line."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, cast

from ..client.types import TaskDetail, TaskIn, TaskPage
from ..models import TaskStatus
from . import output
from .common import Actions, ClientConfig, CliError, parse_json, read_json_file

if TYPE_CHECKING:
    from rich.console import Console

HELP = "add, list, show, cancel and split tasks, and answer their questions"
STATUSES = tuple(s.value for s in TaskStatus)


#: the task an action names
TASK_ID = ("task_id", "ID")


def register(parser: argparse.ArgumentParser) -> None:
    actions = Actions(parser)

    add = actions.add("add", add_tasks, "add one task, or a batch from a JSON file")
    add.add_argument("--type", help="the task type (also its capability unless --capability)")
    add.add_argument("--file", metavar="PATH",
                     help='a batch: a JSON list of task objects or {"tasks": [...]} '
                          '("-" reads stdin); all or nothing')
    add.add_argument("--id", help="a task id of your own (default: generated)")
    add.add_argument("--title")
    add.add_argument("--input", metavar="JSON", help="the task's input as JSON")
    add.add_argument("--priority", type=int, help="1..10, 10 highest (default: computed)")
    add.add_argument("--depends-on", action="append", default=[], metavar="ID",
                     help="a task this one waits for (repeat, or comma-separated)")
    add.add_argument("--capability", help="the capability a session needs to take it")
    add.add_argument("--max-attempts", type=int)
    add.add_argument("--estimated-hours", type=float)
    add.add_argument("--critical", action="store_true", default=None)
    add.add_argument("--infinite-scale", action="store_true", default=None)
    add.add_argument("--roi", help='e.g. "high" (raises the computed priority)')
    add.add_argument("--context-topic", action="append", default=[], metavar="TOPIC",
                     help="a knowledge topic its holder gets in context.knowledge (repeat)")

    ls = actions.add("list", list_tasks, "list tasks, newest filters first")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--capability")
    ls.add_argument("--session", help="tasks assigned to this session")
    ls.add_argument("--limit", type=int, default=100, help="page size, 1..1000")
    ls.add_argument("--cursor", help="continue from a previous page")
    ls.add_argument("--all", action="store_true", help="follow every page")

    actions.add("show", show_task, "a task with its result, error and attempts", TASK_ID)

    cancel = actions.add("cancel", cancel_task, "cancel a task; its dependents become blocked",
                         TASK_ID)
    cancel.add_argument("--reason")

    split = actions.add("split", split_task, "split a task you hold into subtasks (--token: "
                        "the session's token)", TASK_ID)
    split.add_argument("--fencing-token", type=int, required=True,
                       help="the fencing token of your lease on the task")
    split.add_argument("--file", required=True, metavar="PATH",
                       help='the subtasks: a JSON list of task objects or {"subtasks": [...]} '
                            '("-" reads stdin); they may depend on each other')
    split.add_argument("--merge", choices=("list", "object", "task"), default="list",
                       help="the parent's result: results in subtask order, {id: result}, "
                            "or a merge task's result (--merge-type)")
    split.add_argument("--merge-type", help="with --merge task: the merge task's type")
    split.add_argument("--merge-id", help="with --merge task: its id (default: generated)")
    split.add_argument("--merge-title")
    split.add_argument("--merge-input", metavar="JSON")

    actions.add("answer", answer_task, "answer the question a task's holder asked "
                "(input_required)", TASK_ID, ("text", "ANSWER"))
    actions.done()


# -- add -----------------------------------------------------------------------------------


def task_from_flags(args: argparse.Namespace) -> TaskIn:
    if not args.type:
        raise CliError("task add needs --type (or --file for a batch)")
    deps = [d for item in args.depends_on for d in item.split(",") if d.strip()]
    fields: dict[str, Any] = {
        "type": args.type, "id": args.id, "title": args.title,
        "input": parse_json(args.input, "--input") if args.input is not None else None,
        "priority": args.priority, "dependencies": [d.strip() for d in deps] or None,
        "required_capability": args.capability, "max_attempts": args.max_attempts,
        "estimated_hours": args.estimated_hours, "critical": args.critical,
        "infinite_scale": args.infinite_scale, "roi": args.roi,
        "context_topics": args.context_topic or None,
    }
    return cast(TaskIn, {k: v for k, v in fields.items() if v is not None})


def tasks_from_file(path: str) -> list[TaskIn]:
    data = read_json_file(path, "task file")
    if isinstance(data, dict):
        data = data.get("tasks", [data])
    if not isinstance(data, list) or not data or not all(isinstance(t, dict) for t in data):
        raise CliError('a task file holds a task object, a non-empty list of them, or '
                       '{"tasks": [...]}')
    return cast(list[TaskIn], data)


def add_tasks(args: argparse.Namespace) -> int:
    cfg = ClientConfig.from_args(args)
    if args.file is not None:
        flags = ("type", "id", "title", "input", "priority", "capability", "max_attempts",
                 "estimated_hours", "critical", "infinite_scale", "roi")
        given = [f"--{f.replace('_', '-')}" for f in flags if getattr(args, f) is not None]
        if args.depends_on:
            given.append("--depends-on")
        if args.context_topic:
            given.append("--context-topic")
        if given:
            raise CliError(f"--file takes the tasks from the file; drop {' '.join(given)}")
        batch = tasks_from_file(args.file)
    else:
        batch = [task_from_flags(args)]
    with cfg.client() as client:
        added = client.add_tasks(batch)
    output.emit(cfg, {"tasks": added},
                lambda con: con.print(output.tasks_table(added, f"added {len(added)}")))
    return 0


# -- list / show / cancel ------------------------------------------------------------------


def list_tasks(args: argparse.Namespace) -> int:
    cfg = ClientConfig.from_args(args)
    if not 1 <= args.limit <= 1000:
        raise CliError("--limit must be within 1..1000")
    filters = {"status": args.status, "capability": args.capability, "session": args.session}
    with cfg.client() as client:
        if args.all:
            page: TaskPage = {"tasks": list(client.iter_tasks(**filters, page_size=args.limit)),
                              "next_cursor": None}
        else:
            page = client.list_tasks(**filters, limit=args.limit, cursor=args.cursor)

    def human(con: Console) -> None:
        con.print(output.tasks_table(page["tasks"]))
        if page["next_cursor"]:
            con.print(f"more: swarm task list --cursor {page['next_cursor']}")

    output.emit(cfg, page, human)
    return 0


def show_task(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.get_task(args.task_id), None, render_detail)


def render_detail(con: Console, detail: TaskDetail) -> None:
    t = detail["task"]
    prog = t["progress"]
    con.print(output.pairs(f"task {t['id']}", (
        ("status", t["status"]), ("type", t["type"]), ("title", t["title"]),
        ("capability", t["required_capability"]), ("priority", t["priority"]),
        ("assigned to", t["assigned_to"]),
        ("attempts", f"{t['attempts']} of {t['max_attempts']}"),
        ("fencing token", t["fencing_token"]),
        ("progress", f"{prog['value']:.0%}" + (f" {prog['message']}" if prog["message"]
                                               else "")),
        ("dependencies", ", ".join(t["dependencies"])), ("parent", t["parent_id"]),
        ("created", t["created_at"]), ("started", t["started_at"]),
        ("completed", t["completed_at"]), ("input", output.compact(t["input"], 200)),
    )))
    if t["result"] is not None:
        con.print("[bold]result[/bold]")
        con.print(output.pretty(t["result"]), markup=False, soft_wrap=True)
    if t["error"]:
        con.print(f"[bold red]error[/bold red] {output.escape(t['error'])}")
    if detail["history"]:
        con.print(output.attempts_table(detail["history"]))
    else:
        con.print("no attempts yet")


def cancel_task(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.cancel(args.task_id, args.reason), "task",
                          lambda con, t: con.print(f"task {t['id']} is now {t['status']}"))


# -- split ---------------------------------------------------------------------------------


def merge_from_flags(args: argparse.Namespace) -> str | dict[str, Any]:
    extra = {"--merge-type": args.merge_type, "--merge-id": args.merge_id,
             "--merge-title": args.merge_title, "--merge-input": args.merge_input}
    if args.merge != "task":
        given = [flag for flag, value in extra.items() if value is not None]
        if given:
            raise CliError(f"{' '.join(given)} go with --merge task")
        return str(args.merge)
    if not args.merge_type:
        raise CliError("--merge task needs --merge-type (the merge task's type)")
    task: dict[str, Any] = {"type": args.merge_type, "id": args.merge_id,
                            "title": args.merge_title}
    if args.merge_input is not None:
        task["input"] = parse_json(args.merge_input, "--merge-input")
    return {"task": {k: v for k, v in task.items() if v is not None}}


def split_task(args: argparse.Namespace) -> int:
    data = read_json_file(args.file, "subtask file")
    if isinstance(data, dict):
        data = data.get("subtasks")
    if not isinstance(data, list) or not data or not all(isinstance(t, dict) for t in data):
        raise CliError('a subtask file holds a non-empty list of task objects, or '
                       '{"subtasks": [...]}')
    merge = merge_from_flags(args)
    cfg = ClientConfig.from_args(args)
    with cfg.client() as client:
        done = client.split(args.task_id, args.fencing_token, cast(list[TaskIn], data),
                            merge=merge)
    title = f"task {done['task']['id']} is {done['task']['status']}: its subtasks"
    output.emit(cfg, done, lambda con: con.print(output.tasks_table(done["subtasks"], title)))
    return 0


def answer_task(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.answer(args.task_id, args.text), "task",
                          lambda con, t: con.print(f"answered: task {t['id']} is now "
                                                   f"{t['status']}"))
