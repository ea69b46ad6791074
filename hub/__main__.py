"""``python -m timm_zerosnet.hub``: the zerosnet-hub command line."""

import sys

from .cli import main

sys.exit(main())
