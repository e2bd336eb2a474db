"""``python -m ecomvlm ...`` = the ``ecomvlm`` command (what ``accelerate launch -m`` needs)."""

from ecomvlm.cli import app_entry

app_entry()
