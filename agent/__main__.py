"""`python -m agent` is the same program as the `visionloop` console script."""

import sys

from agent.cli.app import main

sys.exit(main())
