"""``python -m ebmgraph`` (and ``torchrun ... -m ebmgraph run FILE``): the ebmgraph command."""

import sys

from ebmgraph.cli import main

sys.exit(main())
