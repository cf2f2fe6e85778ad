import sys

from llada_cot.cli import main

sys.exit(main())
