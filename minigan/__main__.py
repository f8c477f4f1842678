"""``python -m minigan``: the same as the ``minigan`` command."""

from minigan.cli import main

main()
