#!/usr/bin/env python3
"""OPD phase C: train per-expert LoRA of the quantized student (docs/recovery.md). Plain PyTorch, no transformers."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from razor_opd.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
