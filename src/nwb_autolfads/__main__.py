import sys

from nwb_autolfads.cli import main

if __name__ == "__main__":  # spawned PBT workers re-import the main module
    sys.exit(main())
