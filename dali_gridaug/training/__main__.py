"""``python -m dali_gridaug.training`` (and ``torchrun -m dali_gridaug.training``): the
``dali-gridaug train`` command, usage errors printed as one line with exit status 2.
"""

import sys

from dali_gridaug.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
