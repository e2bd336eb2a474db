"""Synthetic marketplace catalog: taxonomy, product sampling, rendering and listing text."""
