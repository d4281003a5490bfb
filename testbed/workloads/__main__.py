"""python -m testbed.workloads --hostname POD SUBCOMMAND [flags]: run one stand-in."""
import sys

from .servers import main

sys.exit(main())
