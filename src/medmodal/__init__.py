"""medmodal: multi-modal medical image learning with missing modalities and scarce labels."""

__version__ = "0.1.0"
