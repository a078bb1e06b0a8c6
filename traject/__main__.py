"""``python -m traject``: the ``traject`` command."""

from traject.cli import main

main()
