"""Command line: python -m apps.chat ingest PATH... [--collection NAME] [--sync] | serve [--port N]
| feedback export [--output FILE] | evaluate QA.jsonl ..."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from pathlib import Path

from .logging_setup import configure_logging
from .settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m apps.chat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add or update documents (PDF, Markdown, HTML, text)")
    ingest.add_argument("paths", nargs="+", type=Path, help="files or folders")
    ingest.add_argument(
        "--user-id",
        action="append",
        default=[],
        metavar="ID",
        help="only this user (Entra object id) may read these documents; repeatable",
    )
    ingest.add_argument(
        "--group-id",
        action="append",
        default=[],
        metavar="ID",
        help="members of this Entra group may read these documents; repeatable",
    )
    ingest.add_argument(
        "--collection",
        type=_collection_name,
        metavar="NAME",
        help="the collection these documents belong to; default: the collection whose folder holds them,"
        " else one named after the folder given (or the file's folder)",
    )
    ingest.add_argument(
        "--sync",
        action="store_true",
        help="also remove the documents of each folder given whose files are no longer in it",
    )

    serve = commands.add_parser("serve", help="run the web app")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, $WEBSITES_PORT or 8000")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")

    feedback = commands.add_parser("feedback", help="answer ratings users gave")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    export = feedback_commands.add_parser("export", help="every rating as JSON lines, oldest first")
    export.add_argument("--output", type=Path, default=None, metavar="FILE", help="default: standard output")

    evaluate = commands.add_parser("evaluate", help="run a question/ground-truth set against the app", add_help=False)
    evaluate.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def _collection_name(text: str) -> str:
    from .sources import check_collection_name

    try:
        return check_collection_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def _ingest(settings, arguments: argparse.Namespace) -> int:
    import psycopg

    from .ingest import AccessList
    from .model_client import ModelError
    from .services import ingest_paths

    access = AccessList(tuple(arguments.user_id), tuple(arguments.group_id))
    try:
        report = await ingest_paths(
            settings, arguments.paths, access, collection=arguments.collection, sync=arguments.sync
        )
    except (psycopg.Error, ModelError) as error:
        # Each document is written in one transaction, so none is half-written: running again finishes.
        failed = "the database" if isinstance(error, psycopg.Error) else "the embedding model"
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(
            f"error: ingestion stopped: {failed} failed ({reason}); every document is either fully written"
            " or unchanged, run the same command again to finish",
            file=sys.stderr,
        )
        return 3
    print(report.summary())
    return 1 if report.failed else 0


async def _export_feedback(settings, output: Path | None) -> int:
    import json

    from .database import Database
    from .history import ConversationStore

    database = Database(settings)
    await database.open()
    try:
        records = await ConversationStore(database).feedback_records()
    finally:
        await database.close()
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if output is None:
        sys.stdout.write(lines)
    else:
        output.write_text(lines, encoding="utf-8")
        print(f"{len(records)} ratings written to {output}", file=sys.stderr)
    return 0


def _serve(settings, host: str, port: int | None) -> int:
    import uvicorn

    from .app import create_app
    from .server import uvicorn_options

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with our handler in place.
    # Exiting normally here (not dying of the signal) lets the embedded PostgreSQL stop at exit.
    signal.signal(signal.SIGTERM, _exit_normally)
    uvicorn.run(create_app(settings), host=host, port=port or settings.port, log_level="info", **uvicorn_options())
    return 0


def _exit_normally(signal_number: int, frame: object) -> None:
    raise SystemExit(0)


def _evaluate(arguments: list[str]) -> int:
    try:
        evaluate = importlib.import_module("apps.chat.evaluate")
    except ModuleNotFoundError as error:
        if error.name != "apps.chat.evaluate":
            raise
        print("error: the evaluate command is not installed (apps/chat/evaluate.py is missing)", file=sys.stderr)
        return 2
    return evaluate.main(arguments) or 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["evaluate"]:
        # evaluate's own parser takes every option after it (--help, --url ...); argparse.REMAINDER
        # would hand a leading option to this parser instead.
        arguments = _parser().parse_args(argv[:1])
        arguments.arguments = argv[1:]
    else:
        arguments = _parser().parse_args(argv)
    configure_logging()
    if arguments.command == "evaluate":
        return _evaluate(arguments.arguments)
    try:
        settings = load_settings()
        if settings.uses_local_embeddings and arguments.command in ("ingest", "serve"):
            from .local_embeddings import check_installed

            check_installed()  # its packages are optional: say so now, not in a traceback
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if arguments.command == "ingest":
        return asyncio.run(_ingest(settings, arguments))
    if arguments.command == "feedback":
        return asyncio.run(_export_feedback(settings, arguments.output))
    return _serve(settings, arguments.host, arguments.port)


if __name__ == "__main__":
    sys.exit(main())
