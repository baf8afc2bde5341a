"""The suite's own order (models, regimes, attacks, each attack's eps), recovered from a store.

The store sorts its rows by name (``ResultsStore.tidy``) and a resumed or re-measured cell is
stored again at the end of the ``cells`` table, so neither is the suite's order. What is:

- attacks and their eps: every cell's stored spec lists its attacks, and each attack its eps,
  as the suite file does (a list, in order);
- models and regimes: the suite's text, stored in the store's ``suite_toml`` metadata (its
  ``[model]``/``[[model]]`` and ``[regime]``/``[[regime]]`` entries, labelled as the suite
  loader labels them: ``label``, else ``name``).

Anything the suite text does not name (a store without its text, or text that no longer
parses) comes after, in the order the ``cells`` table first holds it. Worst-case rows
(``worst_linf``, ``worst_l2``) come after every attack, in the order their norm's first attack
comes.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field

from benchbench.report.flags import stored_attack_info
from benchbench.report.verdicts import verifier_info
from benchbench.store.verdicts import derived_norm, is_verdict_row
from benchbench.store.worst import is_worst, worst_norm


@dataclass(frozen=True)
class SuiteOrder:
    """Positions in the suite: ``models``, ``regimes`` and ``attacks`` (labels), each attack's
    ``eps``, and each attack's ``norms`` (which places the worst-case rows)."""

    models: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    eps: dict[str, tuple[float, ...]] = field(default_factory=dict)
    norms: dict[str, str | None] = field(default_factory=dict)
    # [[verifiers]] labels (after the worst cases; their eps and norms in ``eps`` and
    # ``norms``), then the certified_ and exact_ rows derived from their verdicts
    verifiers: tuple[str, ...] = ()

    @staticmethod
    def _at(items: tuple, item) -> tuple:
        return (items.index(item), "") if item in items else (len(items), str(item))

    def group_key(self, model: str, regime: str, dataset: str = "") -> tuple:
        """Sort key of a (model, regime, dataset) section: the suite's nesting order."""
        return (*self._at(self.models, model), *self._at(self.regimes, regime), dataset)

    def attack_key(self, attack: str) -> tuple:
        """Sort key of an attack label: the suite's order; worst-case rows after every attack
        (in the order of their norm's first attack); labels the suite does not list last, by
        name."""
        if is_worst(attack):
            norm = worst_norm(attack)
            first = next((i for i, a in enumerate(self.attacks) if self.norms.get(a) == norm),
                         len(self.attacks))
            return (1, first, attack)
        if attack in self.verifiers:
            return (2, self.verifiers.index(attack), attack)
        if is_verdict_row(attack):  # after the verifiers, in the order of their norms
            norm = derived_norm(attack)
            first = next((i for i, v in enumerate(self.verifiers) if self.norms.get(v) == norm),
                         len(self.verifiers))
            return (3, first, attack)
        at, name = self._at(self.attacks, attack)
        return (0 if at < len(self.attacks) else 4, at, name)

    def eps_key(self, attack: str, eps: float) -> tuple:
        """Sort key of one of ``attack``'s eps: the suite's order (a worst-case row's: as its
        norm's attacks list them, in turn), else by value."""
        listed = self.eps.get(attack, ())
        if is_worst(attack) or is_verdict_row(attack):
            norm = worst_norm(attack) if is_worst(attack) else derived_norm(attack)
            among = self.attacks if is_worst(attack) else self.verifiers
            listed = tuple(dict.fromkeys(e for a in among if self.norms.get(a) == norm
                                         for e in self.eps.get(a, ())))
        return (listed.index(eps), 0.0) if eps in listed else (len(listed), float(eps))


def _labels(value) -> list[str]:
    """The labels of a suite's ``[model]`` table or ``[[model]]`` tables, in order."""
    items = value if isinstance(value, list) else [value]
    return [str(item.get("label", item.get("name"))) for item in items
            if isinstance(item, dict) and item.get("label", item.get("name")) is not None]


def suite_order(meta: dict[str, str], cells: list[dict]) -> SuiteOrder:
    """The order of ``meta``'s suite (``ResultsStore.meta``) over ``cells``
    (``ResultsStore.cells``, in the store's order)."""
    try:
        data = tomllib.loads(meta.get("suite_toml", ""))
    except (tomllib.TOMLDecodeError, TypeError):
        data = {}
    models, regimes = _labels(data.get("model", [])), _labels(data.get("regime", []))
    attacks: list[str] = []
    eps: dict[str, tuple[float, ...]] = {}
    for cell in cells:
        for name, column in ((models, "model"), (regimes, "regime")):
            if cell.get(column) is not None and cell[column] not in name:
                name.append(cell[column])
        try:
            spec = json.loads(cell.get("spec") or "{}")
        except ValueError:
            continue
        for attack in spec.get("attacks", []):
            label = attack.get("label")
            if label is not None and label not in attacks:
                attacks.append(label)
                eps[label] = tuple(float(e) for e in attack.get("eps", ()))
    info = stored_attack_info(meta, cells)
    norms = {label: info.get(label, {}).get("norm") for label in attacks}
    verifiers = verifier_info(cells, meta)
    for label, v in verifiers.items():
        norms[label] = v.get("norm")
        eps[label] = tuple(dict.fromkeys(float(e) for cell in cells for spec in [_spec(cell)]
                                         for ref in spec.get("verifiers", [])
                                         if ref.get("label") == label
                                         for e in ref.get("eps", ())))
    return SuiteOrder(tuple(models), tuple(regimes), tuple(attacks), eps, norms,
                      tuple(verifiers))


def _spec(cell: dict) -> dict:
    try:
        return json.loads(cell.get("spec") or "{}")
    except ValueError:
        return {}
