"""``python -m medmodal``: the command line (same as the ``medmodal`` script)."""

from medmodal.cli import main

if __name__ == "__main__":  # pragma: no cover - entry point
    main()
