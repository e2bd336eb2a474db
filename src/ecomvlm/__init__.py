"""ecomvlm: adapt vision-language models to e-commerce understanding."""

__version__ = "0.1.0"
