"""``python -m edge_allocator`` is the same as the ``edge-allocator`` command."""

from edge_allocator.cli import main

raise SystemExit(main())
