"""``python -m medmodal.cli``."""

from medmodal.cli import main

main()
