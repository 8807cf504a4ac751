import sys

from seqcast.cli import main

sys.exit(main())
