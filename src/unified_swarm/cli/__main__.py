"""`python -m unified_swarm.cli` is `swarm` (for scripts that want this interpreter)."""

import sys

from . import main

sys.exit(main())
