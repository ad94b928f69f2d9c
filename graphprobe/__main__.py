"""``python -m graphprobe``: the same as the ``graphprobe`` command."""
from .cli import main_entry

main_entry()
