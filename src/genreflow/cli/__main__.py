"""``python -m genreflow.cli``: the same command line as ``genreflow``."""

from genreflow.cli import main

raise SystemExit(main())
