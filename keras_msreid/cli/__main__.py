import sys

from keras_msreid.cli import main

sys.exit(main())
