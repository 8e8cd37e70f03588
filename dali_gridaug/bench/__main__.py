"""``python -m dali_gridaug.bench`` = ``dali-gridaug bench``."""

import sys

from dali_gridaug.bench.run import main

sys.exit(main())
