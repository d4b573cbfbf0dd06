"""``headwater dlq list | replay | purge``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from headwater import dead_letters
from headwater.cli.output import JsonFlag, console, print_json, say, settings, topology
from headwater.runtime.settings import Settings
from headwater.sink_replay import SinkRedelivery, sink_named
from headwater.stack.endpoints import resolve_endpoints, resolve_service

dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter topic: what failed, and putting it back.")

FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", help=f"FIELD=VALUE, repeatable; FIELD: {', '.join(dead_letters.FILTER_FIELDS)}."),
]


def _replays(current: Settings, topic: str) -> dead_letters.Replays:
    return dead_letters.Replays(resolve_service(current, "postgres"), topic)


@dlq_app.command("list")
def list_(
    filters: FilterOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    pending: Annotated[bool, typer.Option("--pending", help="Only letters not replayed yet.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List dead letters: why each failed, in which stage, which event it holds, and when it was replayed."""
    current = settings()
    wanted = dead_letters.parse_filters(filters or [])
    topic = topology(current).pipeline.dead_letter
    letters = dead_letters.read_dead_letters(resolve_service(current, "kafka"), topic)
    found = []
    for letter in _replays(current, topic).mark(letters):
        if letter.matches(wanted) and not (pending and letter.replayed_at is not None):
            found.append(letter.summary())
            if len(found) >= limit:
                break
    if as_json:
        print_json(found)
        return
    table = Table("partition:offset", "reason", "stage", "source", "event", "distinct_id", "uuid", "replayed",
                  "error", title=f"{topic}: {len(found)} dead letter(s)", title_justify="left")
    for row in found:
        table.add_row(f"{row['partition']}:{row['offset']}", row["reason"], row["stage"], row["source_topic"],
                      str(row["event"]), str(row["distinct_id"]), str(row["uuid"]), row["replayed_at"] or "",
                      row["error"][:80])
    console.print(table)


@dlq_app.command("replay")
def replay(
    filters: FilterOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be replayed.")] = False,
    again: Annotated[bool, typer.Option("--again", help="Replay letters replayed before too.")] = False,
) -> None:
    """Put dead letters back, to be processed again after a fix: a pipeline stage's on the topic they
    came from, a sink's (stage ``sink:<name>``) straight to that sink, e.g. a webhook that is back.

    Letters replayed before are skipped (``--again`` replays them once more). Exits 1 when a sink
    did not take some of its letters (still down, still refusing): they stay, to be replayed later."""
    current = settings()
    declared = topology(current)
    topic = declared.pipeline.dead_letter

    def progress(letter: dead_letters.DeadLetter) -> None:
        where = letter.stage if sink_named(letter.stage) else letter.source_topic
        say(f"{'would replay' if dry_run else 'replayed'} {letter.partition}:{letter.offset} ({letter.reason}) → "
            f"{where}")

    outcome = dead_letters.replay(
        resolve_service(current, "kafka"), topic, dead_letters.parse_filters(filters or []),
        _replays(current, topic), dry_run=dry_run, again=again, progress=progress,
        redelivery=SinkRedelivery(declared, resolve_endpoints(current)),
    )
    for letter, why in outcome.failed[:20]:
        say(f"not replayed {letter.partition}:{letter.offset} → {letter.stage}: {why}")
    say(f"{outcome.replayed} dead letter(s) {'would be ' if dry_run else ''}replayed, {outcome.before} replayed "
        f"before (--again replays them), {outcome.skipped} not matching"
        + (f", {len(outcome.failed)} still failing (replay again later)" if outcome.failed else ""))
    if outcome.failed:
        raise typer.Exit(1)


@dlq_app.command("purge")
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
) -> None:
    """Delete the dead letters that were replayed (per partition, up to the first one that was not)."""
    current = settings()
    topic = topology(current).pipeline.dead_letter
    counts = dead_letters.purge(resolve_service(current, "kafka"), topic, _replays(current, topic), dry_run=dry_run)
    for partition, n in sorted(counts.items()):
        say(f"{topic}[{partition}]: {n} replayed letter(s) {'would be ' if dry_run else ''}deleted")
    if not counts:
        say("nothing to purge: no partition starts with a replayed letter")
