"""python -m lenet5_series prepare | run | sweep"""

import sys

from lenet5_series.runner import main

sys.exit(main())
