"""The operation store on real SQLite and PostgreSQL databases: records, rules, races, paging."""

from __future__ import annotations

import multiprocessing
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.errors import ConflictError, NotFoundError, ParameterError
from infra.settings import Settings
from infra.store import (
    EventRecord,
    OperationRecord,
    PostgresStore,
    SQLiteStore,
    StackRecord,
    Store,
    StoreError,
    open_store,
)
from tests.harness import free_port
from tests.pgserver import PostgresServer

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def operation(id: str, stack: str = "s1", kind: str = "create", status: str = "queued",
              created: float = T0) -> OperationRecord:
    return OperationRecord(id=id, kind=kind, stack=stack, program="random", status=status,
                           created=created)


def stack(name: str = "s1", op: str = "op-1", program: str = "random",
          status: str = "creating") -> StackRecord:
    return StackRecord(name=name, program=program, status=status, config={"length": 8},
                       outputs=None, created=T0, updated=T0, expires=T0 + 3600,
                       last_operation=op)


def create(store: Store, name: str, op: str, program: str = "random") -> None:
    store.begin_create(stack(name, op, program), operation(op, name))


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one fresh store: SQLite in a temp state dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return Settings(state_dir=tmp_path / "state")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = "store_" + uuid.uuid4().hex[:12]
    server.create_database(database)
    # The Pulumi state table's parameter rides along in the URL; libpq must not see it.
    return Settings(state_dir=tmp_path / "state", backend=server.url(database, table="state"))


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    yield store
    store.close()


def in_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run target(0..count-1) in threads released at once; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def in_processes(count: int, target: Callable[..., None], settings: Settings) -> list[str]:
    """Run target(settings, index, barrier, results) in spawned processes; return their results."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    manager = context.Manager()
    try:
        results = manager.list()
        processes = [context.Process(target=target, args=(settings, i, barrier, results))
                     for i in range(count)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [p.exitcode for p in processes] == [0] * count
        return list(results)
    finally:
        manager.shutdown()


# -- which database ------------------------------------------------------------------------
def test_open_store_uses_sqlite_in_the_state_dir_and_connects_on_first_use(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    store = open_store(settings)
    assert isinstance(store, SQLiteStore)
    assert not (tmp_path / "state").exists()
    store.check()
    assert (tmp_path / "state" / "operations.db").is_file()
    store.close()


def test_open_store_uses_postgres_for_a_postgres_backend_without_connecting(tmp_path) -> None:
    # Nothing listens there: only a connection attempt would fail.
    url = f"postgres://u:pw@127.0.0.1:{free_port()}/db?sslmode=disable&table=t"
    store = open_store(Settings(state_dir=tmp_path / "state", backend=url))
    assert isinstance(store, PostgresStore)
    with pytest.raises(StoreError):
        store.check()


# -- stacks and operations -----------------------------------------------------------------
def test_a_stack_lives_through_create_update_and_destroy(store: Store) -> None:
    create(store, "s1", "op-1")
    assert store.get_stack("s1") == stack("s1", "op-1")
    assert store.running_operation("s1") == operation("op-1")

    assert store.start_operation("op-1", T0 + 1) is True
    assert store.start_operation("op-1", T0 + 2) is False  # no longer queued
    done = store.finish_operation("op-1", "succeeded", T0 + 5, outputs={"value": "[secret]"})
    assert (done.status, done.started, done.finished, done.outputs) == (
        "succeeded", T0 + 1, T0 + 5, {"value": "[secret]"})
    assert store.get_operation("op-1") == done
    assert store.running_operation("s1") is None
    store.update_stack("s1", status="ready", outputs={"value": "[secret]"}, updated=T0 + 5)

    store.begin_operation(operation("op-2", kind="update", created=T0 + 10), "updating")
    updating = store.get_stack("s1")
    assert (updating.status, updating.last_operation) == ("updating", "op-2")
    store.finish_operation("op-2", "failed", T0 + 11, error_code="engine_error",
                           error_message="up failed")
    store.update_stack("s1", status="ready", config={"length": 12}, expires=None)
    ready = store.get_stack("s1")
    assert (ready.status, ready.config, ready.expires, ready.outputs) == (
        "ready", {"length": 12}, None, {"value": "[secret]"})

    store.begin_operation(operation("op-3", kind="destroy", created=T0 + 20), "destroying")
    store.finish_operation("op-3", "succeeded", T0 + 21)
    store.delete_stack("s1")
    assert store.get_stack("s1") is None
    store.delete_stack("s1")  # already gone: no error
    history, _ = store.list_operations("s1", 10, None)
    assert [(op.id, op.status) for op in history] == [
        ("op-3", "succeeded"), ("op-2", "failed"), ("op-1", "succeeded")]
    assert history[1].error_code == "engine_error"


def test_creating_a_taken_stack_name_conflicts_and_changes_nothing(store: Store) -> None:
    create(store, "s1", "op-1")
    with pytest.raises(ConflictError, match="stack 's1' exists"):
        store.begin_create(stack("s1", "op-2", "other"), operation("op-2"))
    assert store.get_stack("s1").program == "random"
    assert store.get_operation("op-2") is None


def test_an_operation_on_an_unknown_stack_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.begin_operation(operation("op-1", "nowhere", "update"), "updating")
    assert store.get_operation("op-1") is None


def test_a_stack_with_an_active_operation_refuses_another_and_names_it(store: Store) -> None:
    create(store, "s1", "op-1")
    with pytest.raises(ConflictError) as refused:
        store.begin_operation(operation("op-2", kind="destroy"), "destroying")
    assert refused.value.operation == "op-1"
    assert "op-1" in str(refused.value)
    assert (store.get_stack("s1").status, store.get_operation("op-2")) == ("creating", None)

    store.start_operation("op-1", T0 + 1)
    with pytest.raises(ConflictError):  # running counts as much as queued
        store.begin_operation(operation("op-2", kind="destroy"), "destroying")
    store.finish_operation("op-1", "succeeded", T0 + 2)
    store.begin_operation(operation("op-2", kind="destroy"), "destroying")
    assert store.running_operation("s1").id == "op-2"


def test_the_database_itself_refuses_a_second_active_operation_on_a_stack(store: Store) -> None:
    # record_operation skips begin_operation's check: only the unique index stands in the way.
    store.record_operation(operation("burn-1", "burner-x", "burn"))
    with pytest.raises(ConflictError) as refused:
        store.record_operation(operation("burn-2", "burner-x", "burn"))
    assert refused.value.operation == "burn-1"
    store.record_operation(operation("burn-3", "burner-x", "burn", status="succeeded"))
    with pytest.raises(ConflictError, match="operation 'burn-1' exists"):
        store.record_operation(operation("burn-1", "burner-y", "burn"))


def test_threads_racing_for_a_stack_get_exactly_one_operation(store: Store) -> None:
    create(store, "s1", "op-0")
    store.finish_operation("op-0", "succeeded", T0)

    results = in_threads(8, lambda i: store.begin_operation(
        operation(f"op-{i + 1}", kind="update"), "updating"))

    winners = [f"op-{i + 1}" for i, result in enumerate(results) if result is None]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) and r.operation == winners[0]
               for r in results if r is not None)
    assert store.get_stack("s1").last_operation == winners[0]
    assert store.running_operation("s1").id == winners[0]


def _begin_in_process(settings: Settings, index: int, barrier: Any, results: Any) -> None:
    store = open_store(settings)
    store.check()
    barrier.wait()
    try:
        store.begin_operation(operation(f"proc-{index}", kind="update"), "updating")
        results.append(f"won proc-{index}")
    except ConflictError as exc:
        results.append(f"lost to {exc.operation}")
    store.close()


def test_processes_racing_for_a_stack_get_exactly_one_operation(settings: Settings) -> None:
    store = open_store(settings)
    create(store, "s1", "op-0")
    store.finish_operation("op-0", "succeeded", T0)

    results = in_processes(3, _begin_in_process, settings)

    [winner] = [r.removeprefix("won ") for r in results if r.startswith("won ")]
    assert sorted(results) == sorted([f"won {winner}"] + [f"lost to {winner}"] * 2)
    assert store.running_operation("s1").id == winner
    store.close()


def test_finishing_an_operation_twice_keeps_its_first_final_status(store: Store) -> None:
    store.record_operation(operation("op-1", "burner-a", "burn"))
    store.finish_operation("op-1", "cancelled", T0 + 1, "cancelled", "cancelled by the client")
    late = store.finish_operation("op-1", "succeeded", T0 + 2, outputs={"value": 1})
    assert (late.status, late.finished, late.outputs) == ("cancelled", T0 + 1, None)
    with pytest.raises(NotFoundError):
        store.finish_operation("op-404", "failed", T0)
    with pytest.raises(ValueError, match="final status"):
        store.finish_operation("op-1", "running", T0)


def test_updating_a_stack_takes_known_fields_of_a_known_stack(store: Store) -> None:
    create(store, "s1", "op-1")
    with pytest.raises(NotFoundError):
        store.update_stack("s2", status="ready")
    with pytest.raises(TypeError, match="program"):
        store.update_stack("s1", program="other")


# -- events --------------------------------------------------------------------------------
def test_events_count_from_one_and_page_by_seq(store: Store) -> None:
    store.record_operation(operation("op-1", "burner-a", "burn"))
    store.record_operation(operation("op-2", "burner-b", "burn"))
    first = store.append_event("op-1", "status", {"status": "running"}, now=T0)
    assert first == EventRecord("op-1", 1, T0, "status", {"status": "running"})
    for n in range(2, 8):
        store.append_event("op-1", "diagnostic", {"severity": "info", "message": f"line {n}"})
    assert store.append_event("op-2", "status", {"status": "running"}).seq == 1

    assert [e.seq for e in store.events("op-1")] == list(range(1, 8))
    assert [e.seq for e in store.events("op-1", after=2, limit=3)] == [3, 4, 5]
    assert store.events("op-1", after=7) == []
    assert store.events("op-1")[0] == first
    assert store.events("op-1")[4].data == {"severity": "info", "message": "line 5"}


def test_events_of_an_unknown_operation_are_refused(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.append_event("op-404", "status", {"status": "running"})
    assert store.events("op-404") == []


def test_concurrent_threads_get_gap_free_unique_event_seqs(store: Store) -> None:
    store.record_operation(operation("op-1", "burner-a", "burn"))

    def write(thread: int) -> list[int]:
        return [store.append_event("op-1", "diagnostic", {"thread": thread, "n": n}).seq
                for n in range(25)]

    seqs = in_threads(8, write)

    assert sorted(s for thread in seqs for s in thread) == list(range(1, 201))
    events = store.events("op-1", limit=500)
    assert [e.seq for e in events] == list(range(1, 201))
    for thread in range(8):  # each writer's events come in the order it wrote them
        assert [e.data["n"] for e in events if e.data["thread"] == thread] == list(range(25))


def _append_in_process(settings: Settings, index: int, barrier: Any, results: Any) -> None:
    store = open_store(settings)
    store.check()
    barrier.wait()
    for n in range(40):
        results.append(f"{store.append_event('op-1', 'diagnostic', {'p': index, 'n': n}).seq}")
    store.close()


def test_concurrent_processes_get_gap_free_unique_event_seqs(settings: Settings) -> None:
    store = open_store(settings)
    store.record_operation(operation("op-1", "burner-a", "burn"))

    seqs = in_processes(3, _append_in_process, settings)

    assert sorted(int(s) for s in seqs) == list(range(1, 121))
    assert [e.seq for e in store.events("op-1", limit=500)] == list(range(1, 121))
    store.close()


def _start_fresh_in_process(settings: Settings, index: int, barrier: Any, results: Any) -> None:
    store = open_store(settings)
    barrier.wait()
    store.record_operation(operation(f"op-{index}", f"burner-{index}", "burn"))
    results.append(f"op-{index}")
    store.close()


def test_processes_starting_at_once_on_a_fresh_database_all_create_the_tables(
        settings: Settings) -> None:
    assert sorted(in_processes(4, _start_fresh_in_process, settings)) == [
        f"op-{i}" for i in range(4)]
    store = open_store(settings)
    assert len(store.list_operations(None, 10, None)[0]) == 4
    store.close()


# -- paging --------------------------------------------------------------------------------
def test_operations_page_newest_first_with_an_opaque_cursor(store: Store) -> None:
    for n in range(7):
        # Two operations share each creation time: the id breaks the tie.
        store.record_operation(operation(f"op-{n}", f"burner-{n}", "burn", "succeeded",
                                         created=T0 + n // 2))
    pages, after = [], None
    while True:
        page, after = store.list_operations(None, 3, after)
        pages.append([op.id for op in page])
        if after is None:
            break
        assert "op-" not in after
    assert pages == [["op-6", "op-5", "op-4"], ["op-3", "op-2", "op-1"], ["op-0"]]
    assert store.list_operations(None, 7, None)[1] is None  # an exact fit has no next page

    create(store, "s1", "op-s")
    stack_ops, after = store.list_operations("s1", 3, None)
    assert ([op.id for op in stack_ops], after) == (["op-s"], None)


def test_operations_still_queued_from_before_a_time_come_oldest_first(store: Store) -> None:
    store.record_operation(operation("op-new", "s-new", created=T0 + 100))
    store.record_operation(operation("op-old", "s-old", created=T0 + 10))
    store.record_operation(operation("op-older", "s-older", created=T0))
    store.record_operation(operation("op-running", "s-run", status="running", created=T0))
    store.record_operation(operation("op-done", "s-done", status="failed", created=T0))
    assert [op.id for op in store.queued_before(T0 + 50)] == ["op-older", "op-old"]
    assert store.queued_before(T0) == []


def test_stacks_page_by_name_and_filter_by_program_and_status(store: Store) -> None:
    for n, name in enumerate(["delta", "alpha", "echo", "charlie", "bravo"]):
        create(store, name, f"op-{name}", "random" if n % 2 == 0 else "bucket")
    store.update_stack("echo", status="ready")

    first, after = store.list_stacks(None, None, 2, None)
    second, after2 = store.list_stacks(None, None, 2, after)
    last, end = store.list_stacks(None, None, 2, after2)
    assert [[s.name for s in page] for page in (first, second, last)] == [
        ["alpha", "bravo"], ["charlie", "delta"], ["echo"]]
    assert end is None

    random, _ = store.list_stacks("random", None, 10, None)
    assert [s.name for s in random] == ["bravo", "delta", "echo"]
    ready, _ = store.list_stacks("random", "ready", 10, None)
    assert [s.name for s in ready] == ["echo"]
    assert store.list_stacks("none", None, 10, None) == ([], None)


@pytest.mark.parametrize("cursor", ["not a cursor", "", "WyJhIl0", "eyJhIjogMX0"])
def test_a_cursor_the_store_did_not_make_is_an_invalid_after_parameter(
        store: Store, cursor: str) -> None:
    with pytest.raises(ParameterError) as bad:
        store.list_operations(None, 10, cursor)  # "WyJhIl0" is ["a"]: one value short
    assert bad.value.parameter == "after"
    if cursor != "WyJhIl0":  # a valid stack cursor
        with pytest.raises(ParameterError):
            store.list_stacks(None, None, 10, cursor)


# -- idempotency and retention -------------------------------------------------------------
def test_an_idempotency_key_is_claimed_once_then_returns_the_first_request(store: Store) -> None:
    assert store.claim_idempotency_key("key-1", "hash-a", "op-1", T0) is None
    assert store.claim_idempotency_key("key-1", "hash-b", "op-2", T0 + 1) == ("hash-a", "op-1")
    assert store.claim_idempotency_key("key-2", "hash-b", "op-2", T0 + 1) is None


def test_threads_claiming_one_idempotency_key_agree_on_the_winner(store: Store) -> None:
    results = in_threads(8, lambda i: store.claim_idempotency_key("k", f"h{i}", f"op-{i}", T0))
    [winner] = [i for i, result in enumerate(results) if result is None]
    assert results.count((f"h{winner}", f"op-{winner}")) == 7


def test_purge_drops_old_finished_operations_their_events_and_old_keys(store: Store) -> None:
    old, recent, active = (operation(f"op-{n}", f"burner-{n}", "burn") for n in "abc")
    for op in (old, recent, active):
        store.record_operation(op)
        store.append_event(op.id, "status", {"status": "running"})
    store.finish_operation(old.id, "succeeded", T0 + 10)
    store.finish_operation(recent.id, "failed", T0 + 100)
    store.claim_idempotency_key("old", "h", old.id, T0 + 10)
    store.claim_idempotency_key("new", "h", recent.id, T0 + 100)

    assert store.purge(older_than=T0 + 50) == 1

    assert store.get_operation(old.id) is None
    assert store.events(old.id) == []
    assert [store.get_operation(op.id) is not None for op in (recent, active)] == [True, True]
    assert len(store.events(recent.id)) == 2  # "running" and its final status
    assert store.claim_idempotency_key("old", "h2", "op-x", T0 + 60) is None  # forgotten
    assert store.claim_idempotency_key("new", "h2", "op-x", T0 + 60) == ("h", recent.id)
    assert store.purge(older_than=T0 + 1000) == 1  # the active one stays, however old
    assert store.get_operation(active.id) is not None


# -- JSON shapes ---------------------------------------------------------------------------
def test_records_have_the_api_json_shapes() -> None:
    finished = OperationRecord(id="op-1", kind="update", stack="s1", program="random",
                               status="failed", created=T0, started=T0 + 0.25,
                               finished=T0 + 61.5, error_code="engine_error",
                               error_message="up failed", outputs={"value": "[secret]"})
    assert finished.to_json() == {
        "id": "op-1", "kind": "update", "status": "failed", "stack": "s1", "program": "random",
        "created": "2027-01-15T08:00:00.000Z", "started": "2027-01-15T08:00:00.250Z",
        "finished": "2027-01-15T08:01:01.500Z",
        "error": {"code": "engine_error", "message": "up failed"},
        "outputs": {"value": "[secret]"}}
    queued = operation("op-2").to_json()
    assert (queued["started"], queued["finished"], queued["error"], queued["outputs"]) == (
        None, None, None, None)

    assert stack("s1", "op-1").to_json() == {
        "name": "s1", "program": "random", "status": "creating", "config": {"length": 8},
        "outputs": None, "created": "2027-01-15T08:00:00.000Z",
        "updated": "2027-01-15T08:00:00.000Z", "expires": "2027-01-15T09:00:00.000Z",
        "last_operation": "op-1"}
    assert EventRecord("op-1", 3, T0 + 0.001, "status", {"status": "running"}).to_json() == {
        "seq": 3, "time": "2027-01-15T08:00:00.001Z", "type": "status",
        "data": {"status": "running"}}


# -- unavailability ------------------------------------------------------------------------
def test_an_unreachable_postgres_is_a_store_error_without_the_password(tmp_path) -> None:
    password = "s3cret-Pa55-991"
    url = f"postgres://burner:{password}@127.0.0.1:{free_port()}/burner?sslmode=disable"
    store = open_store(Settings(state_dir=tmp_path, backend=url), timeout=2)
    with pytest.raises(StoreError) as failed:
        store.check()
    assert (failed.value.status, failed.value.code, failed.value.retry_after) == (
        503, "store_unavailable", 5)
    assert "127.0.0.1" in str(failed.value)
    logged = "".join(traceback.format_exception(failed.value))  # what a server log shows
    assert "Connection refused" in logged
    assert password not in logged + repr(failed.value)
    store.close()


def test_a_wrong_postgres_password_is_a_store_error_that_does_not_show_it(
        tmp_path, postgres_server: PostgresServer) -> None:
    password = "wrong-Pa55-417"
    url = postgres_server.url().replace(postgres_server.password, password)
    store = open_store(Settings(state_dir=tmp_path, backend=url), timeout=2)
    with pytest.raises(StoreError, match="password authentication failed") as failed:
        store.check()
    assert password not in "".join(traceback.format_exception(failed.value))
    store.close()


def test_an_unusable_state_dir_is_a_store_error(tmp_path) -> None:
    (tmp_path / "state").write_text("a file, not a directory")
    store = open_store(Settings(state_dir=tmp_path / "state"))
    with pytest.raises(StoreError, match="state"):
        store.check()


def test_the_final_status_and_its_event_are_written_together(store: Store) -> None:
    # A stream that sees the final status must also find the event that says so.
    store.record_operation(operation("burn-1", "burner-x", "burn", status="running"))
    store.append_event("burn-1", "resource", {"step": "pre"})
    store.finish_operation("burn-1", "failed", T0 + 3, error_code="engine_error",
                           error_message="the up step failed")
    events = store.events("burn-1")
    assert [(e.seq, e.type) for e in events] == [(1, "resource"), (2, "status")]
    assert events[-1].data == {"status": "failed", "error": {
        "code": "engine_error", "message": "the up step failed"}}
    store.finish_operation("burn-1", "succeeded", T0 + 4)  # already ended: no second event
    assert len(store.events("burn-1")) == 2
