"""medmodal: multi-modal medical image learning with missing modalities and scarce labels."""

__version__ = "0.1.0"


def installed_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else :data:`__version__` (source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medmodal")
    except PackageNotFoundError:
        return __version__
