"""``python -m traject``: the ``traject`` command."""

from traject.cli import main

if __name__ == "__main__":
    main()
