"""The built-in families of the command line, one module each: :mod:`.seg`, :mod:`.cxr`, :mod:`.endoscopy`.

Each module builds its family's Typer app from the command functions (which stay in their
modules under :mod:`medmodal.cli`) and defines ``FAMILY``; :mod:`medmodal.cli.main` registers them.
"""
