import sys

from rnn_experiments.analysis.cli import main

sys.exit(main())
