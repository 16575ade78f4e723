"""cosplace-xs: CosPlace visual geo-localization on small datasets."""

__version__ = "0.1.0"
