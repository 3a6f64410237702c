import sys

from tamrl_coupler.cli import main

sys.exit(main())
