"""Where units run: executors, a plugin kind (``register_executors``).

An executor is a class built with keyword-only options (``workers``, ``address``,
``cpus_per_unit``, ``gpus_per_unit``: the ``benchbench run`` flags the user set) whose
``run(units, *, emit, retries)`` runs every ``benchbench.engine.units.Unit`` through
``benchbench.engine.units.run_caught`` in some process, hands each ``Progress`` to ``emit`` in
the main process and yields one ``UnitDone`` per unit as it finishes, in any order. A unit whose
process dies is run again, up to ``retries`` times (it resumes from its last checkpoint), and
then comes back with an error. An executor never writes the results store: the runner does.

Built-ins (``benchbench.default_plugins.executors``): ``inline`` (this process, the default),
``local`` (a process pool on this machine) and ``ray`` (one Ray task per unit).
"""

from __future__ import annotations

from benchbench.errors import BenchbenchError

#: executor option -> the ``benchbench run`` flag that sets it
FLAGS = {"workers": "--workers", "address": "--ray-address", "cpus_per_unit": "--cpus-per-unit",
         "gpus_per_unit": "--gpus-per-unit"}


def make_executor(registry, name: str, options: dict):
    """The executor registered as ``name``, built with the options the user set (None values
    are unset), or one line saying which option does not fit it."""
    entry = registry.get("executor", name)
    allowed = registry.params_of("executor", name)
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key not in allowed:
            usable = ", ".join(FLAGS.get(k, k) for k in allowed) or "none"
            raise BenchbenchError(f"{FLAGS.get(key, key)} does not apply to --executor {name} "
                                  f"(its options: {usable}); drop it or pick an executor that "
                                  "takes it")
    try:
        return entry.obj(**given)
    except BenchbenchError:
        raise
    except (TypeError, ValueError) as exc:
        raise BenchbenchError(f"--executor {name}: {exc}") from None
