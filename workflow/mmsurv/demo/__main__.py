"""`python -m mmsurv.demo`: the demo cohort's command line (sheet / cohort)."""

import sys

from mmsurv.demo.cohort import main

sys.exit(main())
