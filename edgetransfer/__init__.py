"""edgetransfer: take a pretrained transformer backbone to a verified, packaged edge model."""

__version__ = "0.1.0"
