"""`python -m harness.report OUTDIR [--compare OTHER]`: see `harness.report.build`."""

import sys

from harness.report.build import main

sys.exit(main())
