"""python -m testbed.kubelet.standins --hostname POD SUBCOMMAND [flags]: run one stand-in."""
import sys

from testbed.kubelet.standins.servers import main

sys.exit(main())
