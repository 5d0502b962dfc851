import sys

from aperture.cli import main

sys.exit(main())
