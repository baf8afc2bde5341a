"""Time limits (issue 16 item 7): ``[[attacks]] timeout`` and ``[suite] timeout`` stop what
never returns, fail its cell with a message saying which limit it ran past, and leave the
others, the store and resume intact. Before them, an attack that never returned hung the run.

Times here are wall-clock bounds with a wide margin (the machine is shared); the numbers
compared are stored accuracies of the same code path, exact."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.engine.timeouts import TimedOut, time_limit
from benchbench.errors import SuiteError
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
from tests.plugins import hang_plugin

SUITE = """
[suite]
name = "hang"
seeds = [0, 1]
{suite_extra}

[dataset]
name = "digits"
train = "train[:200]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [16]

[regime]
name = "{regime}"
lr = 0.01
batch_size = 50
epochs = 3
checkpoints = [1, 3]
{regime_extra}

[[attacks]]
name = "fgsm"
eps = [0.1]
{attack_extra}
"""


def suite_text(*, suite_extra="", regime="standard", regime_extra="", attack_extra=""):
    return SUITE.format(suite_extra=suite_extra, regime=regime, regime_extra=regime_extra,
                        attack_extra=attack_extra)


@pytest.fixture(scope="module")
def registry():
    return isolated_registry(hang_plugin)


def _run(tmp_path, registry, text: str, name="run", **options):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    t0 = time.monotonic()
    summary = run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / name,
                        device="cpu", **options)
    with read_store(tmp_path / name) as store:
        return summary, store.cells(), store.tidy(), time.monotonic() - t0


# --- the timer itself ---------------------------------------------------------------------


def test_a_limit_stops_a_python_loop_and_a_sleep_with_its_own_message():
    for body in (lambda: time.sleep(60), lambda: [None for _ in iter(int, 1)]):
        t0 = time.monotonic()
        with (pytest.raises(TimedOut, match="the block ran past its timeout of 0.2 s"),
              time_limit(0.2, "the block")):
            body()
        assert time.monotonic() - t0 < 5


def test_nested_limits_fire_in_deadline_order_and_carry_their_own_token():
    with time_limit(30, "outer") as outer:
        with pytest.raises(TimedOut) as inner_fired, time_limit(0.1, "inner") as inner:
            time.sleep(10)
        assert inner_fired.value.token is inner and "inner" in str(inner_fired.value)
        # the outer limit, inside a longer inner one
        with (pytest.raises(TimedOut) as fired, time_limit(0.3, "outer again") as again,
              time_limit(20, "long inner")):
            time.sleep(10)
        assert fired.value.token is again
    assert outer is not again
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left armed


def test_a_limit_restores_the_handler_it_found_and_a_plugin_cannot_swallow_it():
    mine = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    try:
        with pytest.raises(TimedOut), time_limit(0.1, "spin"):
            hang_plugin.Spins().perturb(None, None, None, eps=[0.1], bounds=(0, 1))
        assert signal.getsignal(signal.SIGALRM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGALRM, mine)


def test_a_timer_the_caller_armed_goes_on_after_the_limits_and_fires_when_due():
    """pytest-timeout's signal method, or an alarm() of the caller's: the blocks borrow the
    timer and give back what was left of it, less their time; a caller's timer that came due
    inside a block fires as soon as the block ends (not never)."""
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with time_limit(10.0, "a block"):
            time.sleep(0.05)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 4.0 < left < 5.0 and not fired  # what was left, less the block's time
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with time_limit(10.0, "a longer block"):
            time.sleep(0.2)  # the caller's timer comes due in here: held, not lost
        assert not fired
        time.sleep(0.05)
        assert len(fired) == 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_no_limit_arms_nothing_and_off_the_main_thread_a_limit_is_refused_not_ignored():
    with time_limit(None, "free"):
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    errors = []

    def worker():
        try:
            with time_limit(1, "threaded"):
                pass
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0]


# --- suites -------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "value"), [
    ("attack", "0"), ("attack", "-1"), ("attack", '"10"'), ("attack", "true"),
    ("attack", "1e12"), ("suite", "0"), ("suite", "nan")])
def test_a_bad_timeout_is_one_line_naming_the_key(tmp_path, registry, where, value):
    text = (suite_text(attack_extra=f"timeout = {value}") if where == "attack"
            else suite_text(suite_extra=f"timeout = {value}"))
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SuiteError) as err:
        load_suite(path, registry)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert ("attacks[0].timeout" if where == "attack" else "suite.timeout") in message


def test_a_timeout_changes_no_cell_id_no_suite_hash_and_travels_with_the_spec(tmp_path,
                                                                             registry):
    from benchbench.suite.cells import CellSpec

    plain, limited = tmp_path / "a.toml", tmp_path / "b.toml"
    plain.write_text(suite_text())
    limited.write_text(suite_text(suite_extra="timeout = 600", attack_extra="timeout = 60"))
    a, b = load_suite(plain, registry), load_suite(limited, registry)
    assert [c.cell_id for c in a.cells()] == [c.cell_id for c in b.cells()]
    assert a.hash == b.hash
    assert "timeout" not in a.cells()[0].to_json()  # absent: specs as before the key existed
    again = CellSpec.from_json(b.cells()[0].to_json())
    assert again == b.cells()[0] and again.timeout == 600 and again.attacks[0].timeout == 60


@pytest.mark.parametrize(("attack", "options"), [
    ("hang_sleep", {}), ("hang_spin", {"engine": "sequential"}),
    ("hang_sleep", {"executor": "local", "executor_options": {"workers": 2}})])
def test_an_attack_that_never_returns_fails_its_cells_and_the_run_goes_on(tmp_path, registry,
                                                                         attack, options):
    text = suite_text(attack_extra=f'timeout = 0.5\n\n[[attacks]]\nname = "{attack}"\n'
                                   "eps = [0.1]\ntimeout = 0.5")
    summary, cells, tidy, wall = _run(tmp_path, registry, text, **options)
    assert wall < 60
    assert [c["status"] for c in cells] == ["failed", "failed"]
    for c in cells:
        assert "AttackTimeout" in c["error"] and attack in c["error"], c["error"]
        assert "ran past its timeout of 0.5 s" in c["error"] and "epoch 1" in c["error"]
    assert len(summary.failed) == 2


def test_an_attack_within_its_timeout_measures_the_same_numbers(tmp_path, registry):
    _, _, ref, _ = _run(tmp_path, registry, suite_text(), "ref")
    _, cells, tidy, _ = _run(tmp_path, registry, suite_text(attack_extra="timeout = 600",
                                                            suite_extra="timeout = 3600"))
    assert [c["status"] for c in cells] == ["ok", "ok"]
    cols = ["seed", "epoch", "split", "attack", "metric", "value"]
    assert tidy.sort_values(cols[:-1])[cols].reset_index(drop=True).equals(
        ref.sort_values(cols[:-1])[cols].reset_index(drop=True))  # same path: exact


@pytest.fixture(scope="module")
def warm(tmp_path_factory, registry):
    """One plain run first: a fresh process's first cell imports scikit-learn and
    torch._dynamo inside its unit, which takes many seconds on a busy machine."""
    _run(tmp_path_factory.mktemp("warm"), registry, suite_text(), "warm")


@pytest.mark.parametrize("engine", ["auto", "sequential"])
def test_a_unit_past_the_suite_timeout_fails_and_resumes_from_its_checkpoint(
        tmp_path, registry, engine, monkeypatch, warm):
    # 4 batches an epoch at 0.5 s (a stack of seeds sleeps once a batch for all of them):
    # 2 s an epoch, 10 s for 5. A limit of 4 s a cell (8 s for the stack of 2 that engine auto
    # makes) passes the checkpoint at epoch 1 (saved for resume; 2 s of margin for the rest of
    # the work on a busy machine) and stops before epoch 5
    slow = suite_text(regime="slow_epochs", regime_extra="pause = 0.5",
                      suite_extra="timeout = 4").replace("epochs = 3\ncheckpoints = [1, 3]",
                                                         "epochs = 5\ncheckpoints = [1, 5]")
    summary, cells, _, wall = _run(tmp_path, registry, slow, engine=engine)
    assert [c["status"] for c in cells] == ["failed", "failed"]
    for c in cells:
        assert "UnitTimeout" in c["error"] and "ran past its timeout" in c["error"], c["error"]
    assert wall < 60
    resumes = list((tmp_path / "run" / "checkpoints" / "resume").glob("*.pt"))
    assert resumes, "the checkpoint before the timeout is kept for the next run"
    # the next run, with time enough (and no pauses: the same cells), resumes and stores both
    monkeypatch.setitem(hang_plugin.SCALE, "pause", 0.0)
    events = []
    summary, cells, tidy, _ = _run(tmp_path, registry, slow.replace("timeout = 4",
                                                                    "timeout = 600"),
                                   engine=engine, events=_Log(events))
    assert [c["status"] for c in cells] == ["ok", "ok"]
    assert sorted(set(tidy.epoch)) == [1, 5]
    assert any("resuming" in line and "after epoch 1" in line for line in events), events


class _Log(Events):
    """Events that keep the log lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_the_python_api_takes_an_attack_timeout_and_fails_with_its_message(registry):
    import benchbench
    from benchbench.engine.cell import AttackTimeout
    from benchbench.errors import ArgumentError
    from benchbench.testing import tiny_data, tiny_model

    x, y = tiny_data(20)
    model = tiny_model()
    with pytest.raises(AttackTimeout, match="attack hang_spin ran past its timeout of 0.3 s"):
        benchbench.evaluate(model, x, y, attacks=[{"name": "hang_spin", "timeout": 0.3}],
                            eps=[0.1], registry=registry)
    table = benchbench.evaluate(model, x, y, attacks=[{"name": "fgsm", "timeout": 60}],
                                eps=[0.1], registry=registry).table
    assert (table.attack == "fgsm").any()
    with pytest.raises(ArgumentError, match="timeout"):
        benchbench.evaluate(model, x, y, attacks=[{"name": "fgsm", "timeout": -1}], eps=[0.1],
                            registry=registry)
