"""python -m testbed.cli ARGS: the `testbed` command, as tests and scripts run it."""
import sys

from testbed.cli.main import main

sys.exit(main())
