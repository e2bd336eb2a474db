"""The Visual Verification Pipeline: noisy listings in, verified instruction data out."""
