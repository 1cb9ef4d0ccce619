"""`python -m edge_demo ...`: see `edge_demo.cli`."""

import sys

from .cli import main

sys.exit(main())
