"""``python -m kdtui.cli``."""

import sys

from kdtui.cli.main import main

sys.exit(main())
