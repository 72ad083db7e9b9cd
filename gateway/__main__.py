"""`python -m gateway` is the `firelane` command."""

import sys

from gateway.cli import main

sys.exit(main())
