"""``python -m locograd``: the same as the ``locograd`` command."""

from .cli import main

raise SystemExit(main())
