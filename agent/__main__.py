"""`python -m agent` is the same program as the `visionloop` console script."""

import sys

from visionloop.cli.app import main

sys.exit(main())
