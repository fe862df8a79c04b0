"""The postgres driver stores what the file driver stores, in the Pulumi CLI's table format.

A state written by one driver, copied blob by blob (rows written with plain SQL, files with
plain writes), is read and changed by the other: a real CLI pointed at the same table reads
our stacks, and a file:// state can be moved into PostgreSQL without a conversion step.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from offline_pulumi.backend import DiyBackend, StackRef
from offline_pulumi.storage import open_storage
from tests.engine.support import Engine, make_engine, plain_outputs, unique_stack
from tests.pgserver import DATABASE, PostgresServer

pytestmark = pytest.mark.slow


@pytest.fixture(name="pair")
def pair_fixture(engine_command: auto.PulumiCommand, tmp_path: Path,
                 postgres_server: PostgresServer) -> tuple[Engine, Engine, PostgresServer, str]:
    """A file engine and a postgres engine (fresh table), sharing nothing but the passphrase."""
    table = f"fmt_{unique_stack('t').replace('-', '_')}"
    (tmp_path / "f").mkdir()
    (tmp_path / "p").mkdir()
    file_engine = make_engine(engine_command, tmp_path / "f")
    pg_engine = make_engine(engine_command, tmp_path / "p", postgres_server.url(table=table))
    pg_engine.storage.check()  # creates the table, as the CLI does on login
    return file_engine, pg_engine, postgres_server, table


def rows(server: PostgresServer, table: str) -> dict[str, str]:
    """Every row as the database returns it: key -> the data column's text."""
    with psycopg.connect(server.url()) as conn:
        return dict(conn.execute(f"SELECT key, data::text FROM {table}".encode()).fetchall())


def test_rows_hold_the_bytes_the_file_driver_writes(pair, tmp_path: Path) -> None:
    _, pg_engine, server, table = pair
    stack = pg_engine.stack("basic")
    up = stack.up()

    stored = rows(server, table)
    assert stored and all(key.startswith(f"{DATABASE}/.pulumi/") for key in stored)
    # The CLI's driver marshals {"data": <base64>}: exactly that text, nothing more.
    for text in stored.values():
        assert text == json.dumps({"data": json.loads(text)["data"]}, separators=(",", ":"))
    project = stack.workspace.project_settings().name
    key = f"{DATABASE}/.pulumi/stacks/{project}/{stack.name}.json"
    from_row = base64.b64decode(json.loads(stored[key])["data"])
    latest = json.loads(from_row)["checkpoint"]["latest"]
    assert {r["urn"].rsplit("::", 1)[1] for r in latest["resources"]} >= {"rid", "rstr", "rpw"}

    # What the file backend writes for the same deployment, byte for byte.
    directory = tmp_path / "byte-check"
    DiyBackend(f"file://{directory}", open_storage(f"file://{directory}", tmp_path)).save_latest(
        StackRef(project, stack.name), latest)
    assert (directory / ".pulumi" / "stacks" / project / f"{stack.name}.json").read_bytes() \
        == from_row
    assert base64.b64decode(json.loads(stored[f"{DATABASE}/.pulumi/meta.yaml"])["data"]) \
        == b"version: 1\n"
    assert plain_outputs(up.outputs)


def test_table_has_the_cli_schema(pair) -> None:
    _, _, server, table = pair
    with psycopg.connect(server.url()) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
        indexes = [row[0] for row in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,)).fetchall()]
    assert columns == [("key", "text", "NO"), ("data", "json", "NO"),
                       ("updated_at", "timestamp with time zone", "NO")]
    assert any("text_pattern_ops" in index for index in indexes)


def test_file_state_copied_into_rows_is_read_and_changed_by_postgres(pair) -> None:
    file_engine, pg_engine, server, table = pair
    work_dir = file_engine.project("basic")
    name = unique_stack()
    stack = auto.create_stack(name, work_dir=str(work_dir), opts=file_engine.opts())
    up = stack.up()

    state = file_engine.root / "state"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        for path in state.rglob("*"):
            if path.is_file():
                data = json.dumps({"data": base64.b64encode(path.read_bytes()).decode()})
                conn.execute(f"INSERT INTO {table} (key, data) VALUES (%s, %s)".encode(),
                             (f"{DATABASE}/{path.relative_to(state)}", data))

    moved = auto.select_stack(name, work_dir=str(work_dir), opts=pg_engine.opts())
    assert plain_outputs(moved.outputs()) == plain_outputs(up.outputs)
    assert [h.kind for h in moved.history()] == ["update"]
    assert moved.destroy().summary.resource_changes == {"delete": 4}  # 3 randoms + the Stack
    moved.workspace.remove_stack(name)
    project = moved.workspace.project_settings().name
    left = rows(server, table)
    assert f"{DATABASE}/.pulumi/stacks/{project}/{name}.json" not in left
    assert f"{DATABASE}/.pulumi/stacks/{project}/{name}.json.bak" in left


def test_rows_copied_into_files_are_read_and_changed_by_file(pair) -> None:
    file_engine, pg_engine, server, table = pair
    work_dir = pg_engine.project("basic")
    name = unique_stack()
    stack = auto.create_stack(name, work_dir=str(work_dir), opts=pg_engine.opts())
    up = stack.up()

    state = file_engine.root / "state"
    for key, text in rows(server, table).items():
        path = state / key.removeprefix(f"{DATABASE}/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(json.loads(text)["data"]))

    moved = auto.select_stack(name, work_dir=str(work_dir), opts=file_engine.opts())
    assert plain_outputs(moved.outputs()) == plain_outputs(up.outputs)
    again = moved.up()
    assert set(again.summary.resource_changes or {}) == {"same"}
    assert [h.kind for h in moved.history()] == ["update", "update"]


def test_a_lock_row_written_as_the_cli_writes_it_stops_our_update_until_cancel(pair) -> None:
    _, pg_engine, server, table = pair
    stack = pg_engine.stack("basic")
    project = stack.workspace.project_settings().name
    holder = {"pid": 4242, "username": "ci", "hostname": "build-7",
              "timestamp": "2026-01-01T00:00:00.000000Z"}
    key = f"{DATABASE}/.pulumi/locks/organization/{project}/{stack.name}/{'0' * 8}-cli.json"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {table} (key, data) VALUES (%s, %s)".encode(),
                     (key, json.dumps({"data": base64.b64encode(
                         json.dumps(holder).encode()).decode()})))

    with pytest.raises(auto.ConcurrentUpdateError) as raised:
        stack.up()
    assert "ci@build-7 (pid 4242)" in str(raised.value)
    assert server.password not in str(raised.value)  # the lock's location is shown without it
    stack.cancel()
    assert key not in rows(server, table)
    assert set(stack.up().summary.resource_changes or {}) == {"create"}


def test_a_removed_stack_leaves_nothing_in_either_store(pair) -> None:
    file_engine, pg_engine, _, _ = pair
    for engine in (file_engine, pg_engine):
        stack = engine.stack("basic")
        stack.up()
        stack.up()  # a second history entry
        stack.destroy()
        checkpoint = engine.checkpoint_key(stack)
        history = f".pulumi/history/e2e-basic/{stack.name}/"
        # Two updates and a destroy: each a record and a copy of its checkpoint.
        assert len(engine.storage.list(history)) == 6
        stack.workspace.remove_stack(stack.name)
        # Its checkpoint and history are gone (a kept backup, .json.bak, is the CLI's too).
        left = [key for key in engine.storage.list(".pulumi/stacks/") + engine.storage.list(
            ".pulumi/history/") if stack.name in key and not key.endswith(".bak")]
        assert left == []
        assert checkpoint not in engine.storage.list(".pulumi/stacks/")


def test_several_keys_are_deleted_in_one_call(pair) -> None:
    file_engine, pg_engine, _, _ = pair
    for storage in (file_engine.storage, pg_engine.storage):
        for key in ("t/a", "t/b", "t/c"):
            storage.put(key, b"x")
        storage.delete("t/a", "t/b", "t/missing")
        assert storage.list("t/") == ["t/c"]
        storage.delete()  # nothing to delete is no error
        assert storage.get("t/c") == b"x"


def test_ensure_writes_a_missing_blob_and_leaves_an_existing_one(pair) -> None:
    file_engine, pg_engine, _, _ = pair
    for storage in (file_engine.storage, pg_engine.storage):
        storage.ensure("e/made", b"first")
        storage.ensure("e/made", b"second")
        storage.put("e/kept", b"written")
        storage.ensure("e/kept", b"other")
        assert (storage.get("e/made"), storage.get("e/kept")) == (b"first", b"written")
