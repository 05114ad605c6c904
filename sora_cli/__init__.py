"""sora: text-to-video on your own machine, from open models."""

__version__ = "0.1.0"
