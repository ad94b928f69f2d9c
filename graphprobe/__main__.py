"""``python -m graphprobe``: the same as the ``graphprobe`` command."""
from ._entry import main_entry

main_entry()
