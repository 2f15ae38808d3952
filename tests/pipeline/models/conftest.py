"""Model tests import TensorFlow; keep its C++ logging quiet."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
