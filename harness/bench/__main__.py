"""`python -m harness.bench train|packing|data ...`: see harness.bench.cli."""

import sys

from harness.bench.cli import main

sys.exit(main())
