import sys

from satworks.devnodes.lnd.cli import main

sys.exit(main())
