"""The ``[model]`` keys for models people already have (README, "Models people already have").

* ``weights = "path"``: a safetensors or torch state-dict file for the table's ``name``
  (any registered architecture; ``benchbench.models.weights``). A relative path is read from
  the suite file's folder.
* ``zoo = "Name"``: a RobustBench entry benchbench builds (``benchbench.zoo``), which sets the
  architecture and its keys; with ``threat_model`` ("Linf", the default, or "L2"), ``model_dir``
  (where RobustBench's ``<dataset>/<threat_model>/<Name>.pt`` files are; "models" beside the
  suite file) and ``model_info`` (a RobustBench checkout's model_info folder, to take the
  reported numbers from instead of those benchbench ships). ``label`` defaults to the name.

The file is hashed when the suite is read: its sha256 is part of the cell's identity. Given
weights go with an ``evaluate_only`` regime (``pretrained``) and only with one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_KEYS = ("weights", "zoo", "threat_model", "model_dir", "model_info")
ZOO_KEYS = ("zoo", "threat_model", "model_dir", "model_info", "label")


def _string(check, item: dict, key: str, where: str, what: str) -> str:
    value = item[key]
    if not isinstance(value, str) or not value.strip():
        raise check.fail(f"{where}.{key}", f"must be a non-empty string: {what}; got "
                         f"{value!r:.60}")
    return value


def _resolve(value: str, suite_dir: Path) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else suite_dir / path).absolute()


def _from_zoo(check, item: dict, where: str, *, suite_dir: Path,
              dataset: str) -> tuple[dict, dict]:
    from benchbench.models.weights import WeightsError, describe
    from benchbench.zoo import (
        DEFAULT_MODEL_DIR,
        FETCH_HINT,
        ZooError,
        find,
        read_model_info,
        source,
    )

    for key in item:
        if key not in ZOO_KEYS:
            raise check.fail(f"{where}.{key}", "not with zoo: the zoo entry sets the network and "
                             f"its keys; with zoo, [model] takes {', '.join(ZOO_KEYS[1:])}")
    name = _string(check, item, "zoo", where, "a RobustBench entry (benchbench zoo list)")
    threat_model = item.get("threat_model", "Linf")
    model_dir = _resolve(_string(check, {"model_dir": item.get("model_dir", DEFAULT_MODEL_DIR)},
                                 "model_dir", where, "the folder of RobustBench's "
                                 "<dataset>/<threat_model>/<Name>.pt files"), suite_dir)
    try:
        entry = find(name, dataset=dataset, threat_model=threat_model)
    except ZooError as exc:
        key = "threat_model" if "threat_model must" in exc.problem else "zoo"
        raise check.fail(f"{where}.{key}", exc.problem) from None
    path = entry.path(model_dir)
    if not path.exists():
        hint = FETCH_HINT.format(name=entry.name, dataset=entry.dataset,
                                 threat_model=entry.threat_model)
        raise check.fail(f"{where}.zoo", f"no file {str(path)!r} (RobustBench's layout "
                         "model_dir/<dataset>/<threat_model>/<Name>.pt; model_dir is "
                         f"{DEFAULT_MODEL_DIR!r} beside the suite file unless set); {hint}")
    try:
        weights = describe(path)
    except WeightsError as exc:
        raise check.fail(f"{where}.zoo", exc.problem) from None
    if "model_info" in item:
        info = _resolve(_string(check, item, "model_info", where, "a RobustBench checkout's "
                                "model_info folder"), suite_dir)
        try:
            weights["zoo"] = read_model_info(info, entry, "RobustBench model_info")
        except ZooError as exc:
            raise check.fail(f"{where}.model_info", exc.problem) from None
    else:
        weights["zoo"] = entry.reported(source())
    table = {"name": entry.model, "label": item.get("label", entry.name), **entry.params}
    return table, weights


def model_weights(check, tables: list[dict], *, suite_dir: Path,
                  dataset: str) -> tuple[list[dict], list[dict | None]]:
    """The ``[model]`` tables without benchbench's weight keys (a zoo entry's network filled
    in), and each table's weights (``benchbench.models.weights.describe``, None: none)."""
    from benchbench.models.weights import WeightsError, describe

    out_tables: list[dict] = []
    out_weights: list[dict | None] = []
    for i, item in enumerate(tables):
        where = f"model[{i}]" if len(tables) > 1 else "model"
        if "zoo" in item:
            if "weights" in item:
                raise check.fail(f"{where}.weights", "give weights or zoo, not both")
            if "name" in item:
                raise check.fail(f"{where}.name", "not with zoo: the zoo entry names the "
                                 "network (benchbench zoo list); remove name")
            table, weights = _from_zoo(check, item, where, suite_dir=suite_dir, dataset=dataset)
        elif "weights" in item:
            for key in ("threat_model", "model_dir", "model_info"):
                if key in item:
                    raise check.fail(f"{where}.{key}", "only with zoo = \"Name\" (a RobustBench "
                                     "entry); weights = \"path\" names its file itself")
            value = _string(check, item, "weights", where, "the path of a safetensors or torch "
                            "state-dict file")
            try:
                weights = describe(_resolve(value, suite_dir))
            except WeightsError as exc:
                raise check.fail(f"{where}.weights", exc.problem) from None
            table = {k: v for k, v in item.items() if k != "weights"}
        else:
            for key in ("threat_model", "model_dir", "model_info"):
                if key in item:
                    raise check.fail(f"{where}.{key}", "only with zoo = \"Name\" (a RobustBench "
                                     "entry; benchbench zoo list)")
            table, weights = item, None
        out_tables.append(table)
        out_weights.append(weights)
    return out_tables, out_weights


def check_pairing(check, registry, models: list[Any], regimes: list[Any]) -> None:
    """Given weights with an ``evaluate_only`` regime and only with one: every (model,
    regime) pair is a cell, so each regime must suit each model."""
    from benchbench.regimes.pretrained import evaluate_only

    def where(key: str, i: int, items: list) -> str:
        return f"{key}[{i}]" if len(items) > 1 else key

    for r, regime in enumerate(regimes):
        evaluates = evaluate_only(registry.get("regime", regime.name).obj)
        for m, model in enumerate(models):
            if evaluates and model.weights is None:
                raise check.fail(f"{where('regime', r, regimes)}.name", f"regime "
                                 f"{regime.name!r} evaluates given weights and trains nothing; "
                                 f"model {model.label!r} has none: give it weights = \"path\" "
                                 "(a safetensors or torch state-dict file) or zoo = \"Name\"")
            if not evaluates and model.weights is not None:
                key = "zoo" if "zoo" in model.weights else "weights"
                raise check.fail(f"{where('model', m, models)}.{key}", "given weights are "
                                 "evaluated by regime \"pretrained\" only (benchbench does not "
                                 f"train from them); regime {regime.name!r} trains: use "
                                 "[regime] name = \"pretrained\"")
