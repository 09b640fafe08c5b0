import sys

from orthoact.cli import main

sys.exit(main())
