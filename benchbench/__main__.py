"""``python -m benchbench`` is the ``benchbench`` command."""

from benchbench.cli import main

main()
