"""The bad-input corpus: every malformed suite file and command line is refused with exit 2, one
line on stderr naming the file (or flag) and the key, no traceback, and nothing written.

Each row is validation only: a row that trains would be a row that failed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.plugins import DISABLE_ENV
from benchbench.suite.document import MAX_SUITE_BYTES
from benchbench.suite.load import load_suite
from tests.conftest import TINY_SUITE

BASE = TINY_SUITE.format(seeds="[0, 1]", epochs=2, checkpoints="[1, 2]", dtype="float32")
PGD = BASE.replace('name = "fgsm"', 'name = "pgd"\nsteps = 2')
SUITE = "suite.toml"
RUN = ("--out", "out/run", "--data-dir", "data", "--device", "cpu")


def edit(old: str, new: str, base: str = BASE) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def case(name: str, content: str | bytes, key: str, fragment: str, *marks):
    """One corpus row: the file's content, the key the error must name, a part of the problem."""
    return pytest.param(content, key, fragment, id=name, marks=marks)


def suite_with(**keys: str) -> str:
    """BASE with ``[suite]`` keys replaced (values are TOML text)."""
    text = BASE
    for key, value in keys.items():
        line = next(line for line in BASE.splitlines() if line.startswith(f"{key} = "))
        text = edit(line, f"{key} = {value}", text)
    return text


SUITES = [
    # --- the file itself --------------------------------------------------------------------
    case("not-utf8", BASE.encode().replace(b'"tiny"', b'"tiny\xff"'), "", "not UTF-8"),
    case("latin-1", edit("[suite]", '[suite]\ndescription = "caf\xe9"').encode("latin-1"), "",
         "not UTF-8 text: byte 0xe9 on line 3"),
    case("utf-16", BASE.encode("utf-16"), "", "not UTF-8"),
    case("nul-byte", edit("[suite]", "[suite]\x00"), "", "not valid TOML"),
    case("not-toml", edit('name = "tiny"', 'name = '), "", "not valid TOML"),
    case("empty-file", "", "suite", "missing"),
    case("nested-3000", edit("[suite]", "[suite]\ndescription = " + "[" * 3000 + "]" * 3000),
         "", "nested too deeply to read; at most 16 levels"),
    case("nested-100-arrays", edit("hidden = [16]", "hidden = " + "[" * 100 + "]" * 100),
         "model.hidden", "nested too deeply"),
    case("nested-40-tables", edit("[suite]", "[suite]\nx = " + "{a = " * 40 + "1" + "}" * 40),
         "suite.x.a", "nested too deeply"),
    case("too-large", BASE + "#" + "x" * MAX_SUITE_BYTES, "", "limit of 1,000,000 bytes"),
    case("700k-seeds", suite_with(seeds="[" + ", ".join(map(str, range(700_000))) + "]"), "",
         "limit of 1,000,000 bytes"),
    case("bom-then-bad-key", "\ufeff" + edit("[suite]", "[suite]\ncolour = 1"), "suite.colour",
         "unknown key"),
    case("unknown-section", edit("[suite]", "[extras]\n[suite]"), "extras", "unknown section"),
    case("missing-model", BASE.replace("[model]", "[models]"), "models", "unknown section"),
    case("missing-regime", BASE[:BASE.index("[regime]")], "regime", "missing"),
    case("suite-not-table", "suite = 5\n" + BASE.replace("[suite]", "[unused]"), "unused",
         "unknown section"),
    case("newline-in-key", edit("[suite]", '[suite]\n"a\\nb" = 1'), "suite.a\\nb",
         "unknown key"),
    case("date-value", edit("lr = 0.01", "lr = 1979-05-27"), "regime.lr", "date or time"),
    case("time-value", edit("[suite]", "[suite]\ndescription = 07:32:00"), "suite.description",
         "date or time"),
    case("int-beyond-64-bits", suite_with(seeds="99999999999999999999999"), "suite.seeds",
         "TOML integers are 64-bit"),
    # --- [suite] ----------------------------------------------------------------------------
    case("seeds-1e12", suite_with(seeds="1000000000000"), "suite.seeds", "up to 1,000"),
    case("seeds-1001", suite_with(seeds="1001"), "suite.seeds", "up to 1,000"),
    case("seeds-list-1001", suite_with(seeds=str(list(range(1001)))), "suite.seeds",
         "a list of 1,001"),
    case("seed-2**31", suite_with(seeds="[2147483648]"), "suite.seeds", "seed < 2**31"),
    case("seed-negative", suite_with(seeds="[-1]"), "suite.seeds", "0 <= seed"),
    case("seeds-zero", suite_with(seeds="0"), "suite.seeds", "positive count"),
    case("seeds-empty", suite_with(seeds="[]"), "suite.seeds", "positive count"),
    case("seeds-float", suite_with(seeds="1.5"), "suite.seeds", "got 1.5"),
    case("seeds-string", suite_with(seeds='"5"'), "suite.seeds", "got '5'"),
    case("seeds-bool", suite_with(seeds="true"), "suite.seeds", "got True"),
    case("seeds-twice", suite_with(seeds="[3, 0, 3]"), "suite.seeds", "seed 3 is listed twice"),
    case("name-dotdot", suite_with(name='".."'), "suite.name", "not only dots"),
    case("name-dot", suite_with(name='"."'), "suite.name", "not only dots"),
    case("name-slash", suite_with(name='"a/b"'), "suite.name", "letters, digits"),
    case("name-empty", suite_with(name='""'), "suite.name", "non-empty string"),
    case("name-long", suite_with(name=f'"{"n" * 101}"'), "suite.name", "up to 100"),
    case("name-int", suite_with(name="5"), "suite.name", "non-empty string"),
    case("name-table", suite_with(name="{a = 1}"), "suite.name", "non-empty string"),
    case("description-table", edit("[suite]", "[suite]\ndescription = {a = 1}"),
         "suite.description", "must be a string"),
    case("description-list", edit("[suite]", "[suite]\ndescription = [1]"),
         "suite.description", "must be a string"),
    case("description-int", edit("[suite]", "[suite]\ndescription = 5"), "suite.description",
         "must be a string"),
    case("suite-unknown-key", edit("[suite]", '[suite]\ncolour = "red"'), "suite.colour",
         "unknown key; allowed: name, seeds, description"),
    # --- [dataset] --------------------------------------------------------------------------
    case("dataset-unknown", edit('name = "digits"', 'name = "digitz"'), "dataset.name",
         "did you mean 'digits'"),
    case("dataset-name-int", edit('name = "digits"', "name = 5"), "dataset.name",
         "non-empty string"),
    case("dataset-string", 'dataset = "digits"\n' + BASE.replace(
        '[dataset]\nname = "digits"\ntrain = "train"\ntest = "test"', ""), "dataset",
         "must be a table"),
    case("dataset-unknown-param", edit('test = "test"', 'test = "test"\ncolour = 1'),
         "dataset.colour", "unknown parameter for dataset 'digits'"),
    case("split-reversed", edit('train = "train"', 'train = "train[5:2]"'), "dataset.train",
         "selects no rows"),
    case("split-beyond-start", edit('train = "train"', 'train = "train[5000:]"'),
         "dataset.train", "start 5000 is beyond the 1,500 rows of 'train'"),
    case("split-beyond-stop", edit('train = "train"', 'train = "train[:5000]"'),
         "dataset.train", "stop 5000 is beyond"),
    case("split-beyond-negative", edit('test = "test"', 'test = "test[-1000:]"'),
         "dataset.test", "beyond the 297 rows"),
    case("split-empty", edit('train = "train"', 'train = "train[0:0]"'), "dataset.train",
         "selects no rows"),
    case("split-int", edit('train = "train"', "train = 5"), "dataset.train", "non-empty string"),
    case("split-unknown", edit('test = "test"', 'test = "valid"'), "dataset.test",
         "unknown split 'valid'"),
    case("split-bad-index", edit('train = "train"', 'train = "train[a:]"'), "dataset.train",
         "is not a split"),
    case("split-huge-index", edit('train = "train"', f'train = "train[{"9" * 5000}:]"'),
         "dataset.train", "is not a split"),
    # --- [model] ----------------------------------------------------------------------------
    case("model-unknown", edit('name = "mlp"', 'name = "mpl"'), "model.name",
         "did you mean 'mlp'"),
    case("hidden-1e20", edit("hidden = [16]", "hidden = [1e20]"), "model", "hidden must be"),
    case("hidden-huge-int", edit("hidden = [16]", "hidden = [100000000000]"), "model",
         "from 1 to 100,000"),
    case("hidden-too-many-params", edit("hidden = [16]", "hidden = [100000, 100000]"), "model",
         "at most 100,000,000 are allowed"),
    case("hidden-zero", edit("hidden = [16]", "hidden = [0]"), "model", "hidden must be"),
    case("hidden-string", edit("hidden = [16]", 'hidden = "16"'), "model", "hidden must be"),
    case("hidden-bool", edit("hidden = [16]", "hidden = [true]"), "model", "hidden must be"),
    case("hidden-table", edit("hidden = [16]", "hidden = {a = 1}"), "model", "hidden must be"),
    case("hidden-101-layers", edit("hidden = [16]", f"hidden = {[4] * 101}"), "model",
         "at most 100 layer sizes"),
    case("activation-int", edit("hidden = [16]", "hidden = [16]\nactivation = 5"), "model",
         "activation must be one of"),
    case("model-unknown-param", edit("hidden = [16]", "hiden = [16]"), "model.hiden",
         "unknown parameter for model 'mlp'"),
    case("model-empty-array", "model = []\n" + BASE.replace(
        '[model]\nname = "mlp"\nhidden = [16]', ""), "model", "must be a table"),
    case("model-labels-twice", BASE.replace('[model]\nname = "mlp"\nhidden = [16]',
                                            '[[model]]\nname = "mlp"\n[[model]]\nname = "mlp"'),
         "model[1].label", "already used by model[0]"),
    case("grid-too-large", suite_with(seeds="1000").replace(
        '[model]\nname = "mlp"\nhidden = [16]', "".join(
            f'[[model]]\nname = "mlp"\nlabel = "m{i}"\n' for i in range(11))), "model",
        "the grid has 11,000 cells (11 models x 1 regimes x 1000 seeds); at most 10,000"),
    case("attacks-101", BASE + "".join(f'[[attacks]]\nname = "fgsm"\nlabel = "a{i}"\neps = 0.1\n'
                                       for i in range(100)), "attacks",
         "101 attacks; at most 100"),
    case("model-label-int", edit("hidden = [16]", "hidden = [16]\nlabel = 5"), "model.label",
         "non-empty string"),
    # --- [regime] ---------------------------------------------------------------------------
    case("lr-nan", edit("lr = 0.01", "lr = nan"), "regime.lr", "must be finite"),
    case("lr-inf", edit("lr = 0.01", "lr = inf"), "regime.lr", "must be finite"),
    case("lr-minus-inf", edit("lr = 0.01", "lr = -inf"), "regime.lr", "must be finite"),
    case("momentum-nan", edit("lr = 0.01", "lr = 0.01\nmomentum = nan"), "regime.momentum",
         "must be finite"),
    case("lr-string", edit("lr = 0.01", 'lr = "fast"'), "regime", "lr must be"),
    case("epochs-zero", edit("epochs = 2", "epochs = 0"), "regime", "epochs must be"),
    case("epochs-1e9", edit("epochs = 2\ncheckpoints = [1, 2]", "epochs = 1000000000"),
         "regime", "epochs must be an integer from 1 to"),
    case("batch-size-1e12", edit("batch_size = 100", "batch_size = 1000000000000"), "regime",
         "batch_size must be an integer from 1 to"),
    case("optimizer-unknown", edit("lr = 0.01", 'lr = 0.01\noptimizer = "rmsprop"'), "regime",
         "optimizer must be one of adam, sgd"),
    case("checkpoints-partial", edit("checkpoints = [1, 2]", "checkpoints = {start = 1}"),
         "regime", "checkpoints must be"),
    case("checkpoints-string", edit("checkpoints = [1, 2]", 'checkpoints = "all"'), "regime",
         "checkpoints must be"),
    case("regime-unknown-param", edit("lr = 0.01", "lr = 0.01\nwarmup = 5"), "regime.warmup",
         "unknown parameter for regime 'standard'"),
    # --- [[attacks]] ------------------------------------------------------------------------
    case("eps-inf", edit("eps = [0.05, 0.2]", "eps = inf"), "attacks[0].eps", "must be finite"),
    case("eps-nan", edit("eps = [0.05, 0.2]", "eps = [0.1, nan]"), "attacks[0].eps[1]",
         "must be finite"),
    case("eps-1e308", edit("eps = [0.05, 0.2]", "eps = 1e308"), "attacks[0].eps",
         "larger than any L-inf step inside digits's bounds [0, 1]; use eps <= 1"),
    case("eps-beyond-range", edit("eps = [0.05, 0.2]", "eps = [0.1, 1.5]"), "attacks[0].eps",
         "use eps <= 1"),
    case("eps-negative", edit("eps = [0.05, 0.2]", "eps = [-0.1]"), "attacks[0].eps",
         "non-negative number"),
    case("eps-empty", edit("eps = [0.05, 0.2]", "eps = []"), "attacks[0].eps",
         "non-negative number"),
    case("eps-string", edit("eps = [0.05, 0.2]", 'eps = "0.1"'), "attacks[0].eps",
         "non-negative number"),
    case("eps-bool", edit("eps = [0.05, 0.2]", "eps = true"), "attacks[0].eps",
         "non-negative number"),
    case("eps-missing", edit("eps = [0.05, 0.2]", ""), "attacks[0].eps", "required"),
    case("eps-twice", edit("eps = [0.05, 0.2]", "eps = [0.1, 0.10]"), "attacks[0].eps",
         "eps 0.1 is listed twice"),
    case("eps-1001", edit("eps = [0.05, 0.2]", f"eps = {[i / 2000 for i in range(1001)]}"),
         "attacks[0].eps", "at most 1,000"),
    case("pgd-step-size-inf", edit("steps = 2", "steps = 2\nstep_size = inf", PGD),
         "attacks[0].step_size", "must be finite"),
    case("pgd-step-size-zero", edit("steps = 2", "steps = 2\nstep_size = 0", PGD),
         "attacks[0]", "step_size must be a positive number, finite"),
    case("pgd-steps-1e9", edit("steps = 2", "steps = 1000000000", PGD), "attacks[0]",
         "steps must be a positive integer, at most 100,000"),
    case("pgd-restarts-zero", edit("steps = 2", "steps = 2\nrestarts = 0", PGD), "attacks[0]",
         "restarts must be"),
    case("pgd-random-start-string", edit("steps = 2", 'steps = 2\nrandom_start = "yes"', PGD),
         "attacks[0]", "random_start must be true or false"),
    case("pgd-norm-unknown", edit("steps = 2", 'steps = 2\nnorm = "l3"', PGD), "attacks[0]",
         "norm must be one of linf, l2"),
    case("pgd-l2-eps-beyond", edit("eps = [0.05, 0.2]", "eps = 9\nnorm = \"l2\"", PGD),
         "attacks[0].eps", "larger than any L2 step"),
    case("attack-label-none", edit("eps = [0.05, 0.2]", 'eps = [0.1]\nlabel = "none"'),
         "attacks[0].label", "reserved for the clean metrics"),
    case("attack-split-unknown", edit("eps = [0.05, 0.2]", 'eps = [0.1]\nsplit = "valid"'),
         "attacks[0].split", "must be one of train, test"),
    case("attack-split-int", edit("eps = [0.05, 0.2]", "eps = [0.1]\nsplit = 5"),
         "attacks[0].split", "must be one of train, test"),
    case("attack-rows-zero", edit("eps = [0.05, 0.2]", "eps = [0.1]\nrows = 0"),
         "attacks[0].rows", "an integer from 1 to 10,000,000"),
    case("attack-rows-string", edit("eps = [0.05, 0.2]", 'eps = [0.1]\nrows = "5"'),
         "attacks[0].rows", "an integer from 1"),
    case("attack-at-unknown", edit("eps = [0.05, 0.2]", 'eps = [0.1]\nat = "first"'),
         "attacks[0].at", "one of all, last"),
    case("attacks-int", "attacks = 5\n" + BASE[:BASE.index("[[attacks]]")], "attacks",
         "must be a table"),
    case("attack-unknown", edit('name = "fgsm"', 'name = "fgsn"'), "attacks[0].name",
         "did you mean 'fgsm'"),
    case("attack-name-table", edit('name = "fgsm"', "name = {a = 1}"), "attacks[0].name",
         "non-empty string"),
    case("attack-unknown-param", edit("eps = [0.05, 0.2]", "eps = [0.1]\nsteps = 3"),
         "attacks[0].steps", "unknown parameter for attack 'fgsm'; allowed: loss"),
    case("attack-loss-unknown", edit("eps = [0.05, 0.2]", 'eps = [0.1]\nloss = "hinge"'),
         "attacks[0]", "loss must be one of ce"),
]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            out[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return out


@pytest.fixture
def refused(tmp_path, monkeypatch):
    """``refused(*args)``: run the CLI in ``tmp_path`` and return its one stderr line after
    checking exit 2, no traceback and an unchanged directory tree."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DISABLE_ENV, "1")
    runner = CliRunner()

    def invoke(*args: str) -> str:
        before = snapshot(tmp_path)
        result = runner.invoke(app, list(args), prog_name="benchbench")
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            repr(result.exception)
        assert result.exit_code == 2, (result.exit_code, result.output)
        assert "Traceback" not in result.output
        assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == ""
        assert snapshot(tmp_path) == before
        return result.stderr.rstrip("\n")

    return invoke


@pytest.mark.parametrize(("content", "key", "fragment"), SUITES)
def test_bad_suite_file_is_refused(refused, tmp_path, content, key, fragment):
    path = tmp_path / SUITE
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = refused("run", SUITE, *RUN)
    where = f"error: {SUITE}: {key}" if key else f"error: {SUITE}: "
    assert line.startswith(where), line
    assert fragment in line, line


def test_the_corpus_is_large_enough():
    assert len(SUITES) >= 60 and len(COMMANDS) >= 20


def test_a_byte_order_mark_is_accepted(write_suite, registry, tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    suite = load_suite(path, registry)
    assert suite.name == "tiny" and not suite.text.startswith("\ufeff")
    assert suite.hash == load_suite(write_suite(), registry).hash


def test_splits_within_the_data_are_accepted(write_suite, registry):
    for train, test in (("train[1000:]", "test[:297]"), ("train[-500:]", "test[-297:]"),
                        ("train[:1500]", "test[0:1]")):
        text = edit('test = "test"', f'test = "{test}"', edit('train = "train"',
                                                             f'train = "{train}"'))
        assert load_suite(write_suite(text=text), registry).dataset.train == train


def test_eps_up_to_the_data_range_is_accepted(write_suite, registry):
    assert load_suite(write_suite(text=edit("eps = [0.05, 0.2]", "eps = [0, 1]")),
                      registry).attacks[0].eps == (0.0, 1.0)
    l2 = edit("eps = [0.05, 0.2]", 'eps = [8]\nnorm = "l2"', PGD)  # sqrt(64) * (1 - 0)
    assert load_suite(write_suite(text=l2), registry).attacks[0].eps == (8.0,)


# --- command lines ------------------------------------------------------------------------


def _directory(tmp_path: Path) -> str:
    (tmp_path / "adir").mkdir()
    return "adir"


def _file(tmp_path: Path) -> str:
    (tmp_path / "afile").write_text("x")
    return "afile"


def _suite(tmp_path: Path) -> str:
    (tmp_path / SUITE).write_text(BASE)
    return SUITE


def _foreign(tmp_path: Path) -> str:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("the user's own")
    return "mine"


def _loop(tmp_path: Path) -> str:
    os.symlink("loop.toml", tmp_path / "loop.toml")
    return "loop.toml"


COMMANDS = [  # (id, args with {suite}, {dir}, ... filled in, what the line names)
    ("run-no-argument", ["run"], "error: benchbench run: Missing argument 'suite'"),
    ("run-unknown-option", ["run", "{suite}", "--bogus"], "No such option: --bogus"),
    ("run-out-no-value", ["run", "{suite}", "--out"], "'--out' requires an argument"),
    ("run-device", ["run", "{suite}", *RUN[:4], "--device", "tpu"],
     "error: --device 'tpu' is not allowed; use one of auto, cpu, cuda"),
    ("run-device-empty", ["run", "{suite}", *RUN[:4], "--device", ""], "--device ''"),
    ("run-engine", ["run", "{suite}", *RUN, "--engine", "turbo"], "--engine 'turbo'"),
    ("run-suite-directory", ["run", "{dir}", *RUN], "error: adir: cannot read the suite file "
                                                    "(a directory)"),
    ("run-suite-missing", ["run", "nothing.toml", *RUN], "error: nothing.toml: cannot read"),
    ("run-suite-symlink-loop", ["run", "{loop}", *RUN], "error: loop.toml: cannot read"),
    ("run-data-dir-file", ["run", "{suite}", "--out", "out/run", "--data-dir", "{file}"],
     "error: --data-dir afile: is a file"),
    ("run-data-dir-under-file", ["run", "{suite}", "--out", "out/run", "--data-dir",
                                 "{file}/mnist"], "error: --data-dir afile/mnist: is under afile"),
    ("run-out-file", ["run", "{suite}", "--out", "{file}", "--device", "cpu"],
     "error: afile: is a file"),
    ("run-out-under-file", ["run", "{suite}", "--out", "{file}/run", "--device", "cpu"],
     "error: afile/run: afile is a file"),
    ("run-out-foreign-dir", ["run", "{suite}", "--out", "{foreign}", "--device", "cpu"],
     "error: mine: exists, is not empty and is not a benchbench run directory"),
    ("run-force-takes-no-value", ["run", "{suite}", "--force=yes"], "--force"),
    ("export-format", ["export", "{dir}", "--format", "xml"],
     "error: --format 'xml' is not allowed; use one of csv, json"),
    ("export-format-no-value", ["export", "{dir}", "--format"], "'--format' requires"),
    ("export-no-store", ["export", "{dir}"], "error: adir: no results.sqlite here"),
    ("report-no-store", ["report", "{dir}"], "error: adir: no results.sqlite here"),
    ("report-no-argument", ["report"], "Missing argument 'run_dir'"),
    ("unknown-command", ["frobnicate"], "No such command 'frobnicate'"),
    ("plugins-unknown-option", ["plugins", "--bogus"], "No such option: --bogus"),
    ("plugins-check-unknown", ["plugins", "check", "fgsn"], "unknown attack 'fgsn'"),
    ("plugins-check-unknown-param", ["plugins", "check", "fgsm", "--param", "steps=3"],
     "error: --param steps: unknown parameter for attack 'fgsm'; allowed: loss"),
    ("plugins-check-not-key-value", ["plugins", "check", "fgsm", "--param", "loss"],
     "error: --param 'loss': write key=value"),
    ("plugins-check-bad-toml", ["plugins", "check", "pgd", "--param", "steps=[1"],
     "error: --param 'steps=[1'"),
    ("data-fetch-unknown", ["data", "fetch", "mnits"], "did you mean 'mnist'"),
    ("data-fetch-data-dir-file", ["data", "fetch", "digits", "--data-dir", "{file}"],
     "error: --data-dir afile: is a file"),
    ("data-no-such-command", ["data", "drop", "mnist"], "No such command 'drop'"),
]


@pytest.mark.parametrize(("args", "expected"), [pytest.param(a, e, id=i) for i, a, e in COMMANDS])
def test_bad_command_line_is_refused(refused, tmp_path, args, expected):
    fill = {"{suite}": _suite, "{dir}": _directory, "{file}": _file, "{loop}": _loop,
            "{foreign}": _foreign}
    filled = []
    for arg in args:
        for mark, make in fill.items():
            if mark in arg:
                arg = arg.replace(mark, make(tmp_path))
        filled.append(arg)
    line = refused(*filled)
    assert expected in line, line
    assert line.startswith("error: "), line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_suite_is_refused(refused, tmp_path):
    (tmp_path / SUITE).write_text(BASE)
    (tmp_path / SUITE).chmod(0)
    assert "cannot read the suite file (Permission denied)" in refused("run", SUITE, *RUN)


def test_a_suite_file_name_that_is_not_utf8_is_named_on_one_line(refused, tmp_path):
    name = os.fsdecode(b"bad\xff.toml")
    (tmp_path / os.fsencode(name).decode("utf-8", "surrogateescape")).write_bytes(
        BASE.replace('"tiny"', '".."').encode())
    line = refused("run", name, *RUN)
    assert line.startswith("error: bad\\udcff.toml: suite.name: "), line


def test_no_arguments_prints_the_help(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "1")
    result = CliRunner().invoke(app, [])
    assert "Usage" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("name", "param", "problem"), [
    ("fgsm", "loss=3", "loss must be one of"),
    ("pgd", "steps=0", "steps must be a positive integer"),
    ("pgd", "step_size=inf", "step_size must be a positive number, finite"),
])
def test_plugins_check_reports_a_refused_value_as_a_failed_build(monkeypatch, name, param,
                                                                 problem):
    """A value the attack refuses is a failed conformance check (exit 1), as documented."""
    monkeypatch.setenv(DISABLE_ENV, "1")
    result = CliRunner().invoke(app, ["plugins", "check", name, "--param", param])
    assert result.exit_code == 1 and "builds" in result.stdout, result.output
    assert problem in " ".join(result.stdout.split()) and "Traceback" not in result.output


# --- plugins that raise ------------------------------------------------------------------


class Exploding:
    """An attack whose constructor raises something other than ValueError or TypeError."""

    norm = "linf"

    def __init__(self, *, power: int = 1) -> None:
        raise RuntimeError("cannot find my weights")


class Undescribed:
    """An adapter whose parameter list cannot be read."""

    @classmethod
    def suite_params(cls) -> list[str]:
        raise ImportError("libfoo.so: cannot open shared object file")


class RaisingAttacks:
    __name__ = "raising_attacks"

    @staticmethod
    def register_attacks(register) -> None:
        register("exploding", Exploding)
        register("undescribed", Undescribed)


@pytest.fixture
def raising_registry(monkeypatch):
    from benchbench import cli, hookimpl
    from benchbench.testing import isolated_registry

    plugin = RaisingAttacks()
    plugin.register_attacks = hookimpl(RaisingAttacks.register_attacks)
    registry = isolated_registry(plugin)
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    return registry


@pytest.mark.parametrize(("attack", "expected"), [
    ("exploding", "RuntimeError: cannot find my weights"),
    ("undescribed", "attacks[0].name: attack 'undescribed' from raising_attacks"),
])
def test_an_attack_plugin_that_raises_is_named_on_one_line(refused, raising_registry, tmp_path,
                                                           attack, expected):
    (tmp_path / SUITE).write_text(edit('name = "fgsm"', f'name = "{attack}"'))
    line = refused("run", SUITE, *RUN)
    assert line.startswith(f"error: {SUITE}: attacks[0]") and expected in line, line


def test_plugins_check_names_an_adapter_that_cannot_list_its_parameters(refused,
                                                                        raising_registry):
    line = refused("plugins", "check", "undescribed", "--param", "x=1")
    assert line.startswith("error: attack 'undescribed' from raising_attacks"), line
    assert "libfoo.so" in line


# --- BENCHBENCH_DISABLE_PLUGINS ------------------------------------------------------------


@pytest.mark.parametrize(("value", "loaded"), [
    ("true", set()), ("TRUE", set()), ("yes", set()), ("On", set()), ("1", set()),
    ("false", {"a", "b"}), ("No", {"a", "b"}), ("off", {"a", "b"}), ("0", {"a", "b"}),
    ("", {"a", "b"}), ("a", {"b"}), ("a,", {"b"}), ("x", {"a", "b"}),
])
def test_disable_plugins_words(monkeypatch, value, loaded):
    from benchbench import plugins

    seen: set[str] = set()

    class EntryPoint:
        def __init__(self, name: str) -> None:
            self.name, self.dist = name, None

        def load(self):
            seen.add(self.name)
            return type(self.name, (), {})()

    monkeypatch.setattr(plugins, "entry_points",
                        lambda *, group: [EntryPoint("a"), EntryPoint("b")])
    monkeypatch.setenv(DISABLE_ENV, value)
    plugins.load_registry()
    assert seen == loaded
