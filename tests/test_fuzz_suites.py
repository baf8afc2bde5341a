"""Fuzzing suite files: random documents built from the schema's own keys (the sections, the
suite and dataset keys, and every parameter the registry lists for the built-in model, regime
and attacks) with wrong types and values. For every example, either the suite validates (no
training is run) or the command line refuses it: exit 2, one line on stderr naming the file, no
traceback, nothing written.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.runner import validate_suite
from benchbench.errors import BenchbenchError
from benchbench.plugins import DISABLE_ENV
from benchbench.suite.load import SUITE_KEYS, TOP_KEYS, load_suite
from benchbench.suite.verifiers import VERIFIER_KEYS
from benchbench.testing import isolated_registry
from tests.test_bad_input import snapshot

REGISTRY = isolated_registry()
ATTACKS = ("fgsm", "pgd", "bim")
BASE_DOC = {
    "suite": {"name": "fuzz", "seeds": 2},
    "dataset": {"name": "digits", "train": "train[:200]", "test": "test[:50]"},
    "model": {"name": "mlp", "hidden": [8]},
    "regime": {"name": "standard", "epochs": 1, "batch_size": 50},
    "attacks": [{"name": "fgsm", "eps": [0.1]}],
    "verifiers": [{"name": "ibp", "eps": [0.1], "rows": 10}],
}
VERIFIERS = ("ibp", "crown", "crown_ibp", "mip")
KEYS = {  # the schema's own keys, section by section
    "suite": list(SUITE_KEYS),
    "dataset": ["name", "train", "test", *REGISTRY.params_of("dataset", "digits")],
    "model": ["name", "label", *REGISTRY.params_of("model", "mlp")],
    "regime": ["name", "label", "seeds", *REGISTRY.params_of("regime", "standard")],
    "attacks": ["name", "label", "eps", "split", "rows", "at",
                *sorted({p for a in ATTACKS for p in REGISTRY.params_of("attack", a)})],
    "verifiers": ["name", "label", *VERIFIER_KEYS,
                  *sorted({p for v in VERIFIERS for p in REGISTRY.params_of("verifier", v)})],
}
WORDS = ["", ".", "..", "a/b", "none", "train", "test", "train[5:2]", "train[5000:]",
         "test[-1:]", "train[:1]", "digits", "mnist", "mlp", "standard", "fgsm", "pgd", "bim",
         "linf", "l2", "adam", "sgd", "relu", "xavier_uniform", "float64", "ce", "margin",
         "all", "last"]

scalars = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(WORDS),
    st.integers(-3, 3), st.integers(),
    st.sampled_from([2**31, 2**63 - 1, -2**63, 10**12, 2**80, 100_000, 100_001]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 1e-300, 0.5, 1.5]),
    st.booleans(),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["a", "start", "step", "stop", "name"]), inner,
                    max_size=3)), max_leaves=8)


@st.composite
def documents(draw) -> dict:
    """BASE_DOC with one to three keys set to a wild value, deleted, or a section replaced."""
    doc = {k: ([dict(a) for a in v] if isinstance(v, list) else dict(v))
           for k, v in BASE_DOC.items()}
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from([*TOP_KEYS * 4, "extra"]))
        action = draw(st.sampled_from(["set"] * 6 + ["delete", "section"]))
        if section == "extra" or action == "section":
            doc[section] = draw(values)
            continue
        table = doc.get(section)
        if isinstance(table, list) and table and isinstance(table[0], dict):
            if section in ("attacks", "verifiers") and draw(st.booleans()):
                table[0]["name"] = draw(st.sampled_from(
                    ATTACKS if section == "attacks" else VERIFIERS))
            table = table[0]
        if not isinstance(table, dict):
            continue
        key = draw(st.sampled_from(KEYS[section]))
        if action == "delete":
            table.pop(key, None)
        else:
            table[key] = draw(values)
    return doc


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict) -> str:
    """Every section as an inline table (or array of them) on one line: valid TOML 1.0."""
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in doc.items())


def test_the_fuzzer_knows_every_section():
    """Deterministic: a section added to the schema without keys here would crash the
    generator only when it happens to draw that section (as ``verifiers`` once did)."""
    assert set(TOP_KEYS) <= set(KEYS) and set(TOP_KEYS) <= set(BASE_DOC)
    validate_suite(load_suite_text(toml_document(BASE_DOC)), REGISTRY)  # the base is valid


def load_suite_text(text: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.toml"
        path.write_text(text, encoding="utf-8")
        return load_suite(path, REGISTRY)


def test_the_writer_round_trips():
    import tomllib

    doc = {**BASE_DOC, "x": {"a": [1.5, "q\"\n\x7f", {"b": True}], "start": -2}}
    assert tomllib.loads(toml_document(doc)) == doc


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_random_suites_validate_or_are_refused_on_one_line(doc):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "fuzz.toml"
        path.write_text(toml_document(doc), encoding="utf-8")
        try:
            validate_suite(load_suite(path, REGISTRY), REGISTRY)
        except BenchbenchError as exc:
            assert str(exc).startswith(f"{path}: ") and str(exc).isprintable(), str(exc)
        else:
            return  # a valid suite: training is not what this test is about
        before = snapshot(root)
        cwd = os.getcwd()
        os.chdir(root)  # the default run directory, were --out ignored, would be under here
        try:
            result = CliRunner().invoke(app, ["run", str(path), "--out", str(root / "out"),
                                              "--data-dir", str(root / "data"), "--device",
                                              "cpu"], env={DISABLE_ENV: "1"})
        finally:
            os.chdir(cwd)
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}: "), \
            result.stderr
        assert snapshot(root) == before
