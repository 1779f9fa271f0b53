"""``python -m modelswap``: the ``modelswap`` command."""

from modelswap.api.cli.main import main_entry

main_entry()
