"""``headwater dlq list | replay``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from headwater import dead_letters
from headwater.cli.output import JsonFlag, console, print_json, say, settings, topology
from headwater.stack.endpoints import resolve_service

dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter topic: what failed, and putting it back.")

FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", help=f"FIELD=VALUE, repeatable; FIELD: {', '.join(dead_letters.FILTER_FIELDS)}."),
]


@dlq_app.command("list")
def list_(
    filters: FilterOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List dead letters: why each failed, in which stage, and which event it holds."""
    current = settings()
    wanted = dead_letters.parse_filters(filters or [])
    topic = topology(current).pipeline.dead_letter
    found = []
    for letter in dead_letters.read_dead_letters(resolve_service(current, "kafka"), topic):
        if letter.matches(wanted):
            found.append(letter.summary())
            if len(found) >= limit:
                break
    if as_json:
        print_json(found)
        return
    table = Table("partition:offset", "reason", "stage", "source", "event", "distinct_id", "uuid", "error",
                  title=f"{topic}: {len(found)} dead letter(s)", title_justify="left")
    for row in found:
        table.add_row(f"{row['partition']}:{row['offset']}", row["reason"], row["stage"], row["source_topic"],
                      str(row["event"]), str(row["distinct_id"]), str(row["uuid"]), row["error"][:80])
    console.print(table)


@dlq_app.command("replay")
def replay(
    filters: FilterOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be replayed.")] = False,
) -> None:
    """Put dead letters back on the topics they came from, to be processed again after a fix."""
    current = settings()
    topic = topology(current).pipeline.dead_letter
    replayed, skipped = dead_letters.replay(
        resolve_service(current, "kafka"), topic, dead_letters.parse_filters(filters or []), dry_run=dry_run,
        progress=lambda letter: say(f"{'would replay' if dry_run else 'replayed'} {letter.partition}:"
                                    f"{letter.offset} ({letter.reason}) → {letter.source_topic}"),
    )
    say(f"{replayed} dead letter(s) {'would be ' if dry_run else ''}replayed, {skipped} left as they are")
