"""`python -m hil_tests.emulator --serial PATH --fs DIR [...]`: one emulated node."""

import sys

from hil_tests.emulator.runner import main

sys.exit(main())
