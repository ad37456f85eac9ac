"""The runtime shipped inside every bundle (predict.py), importable here too.

`edgetransfer package` copies `predict.py` into the bundle unchanged and `edgetransfer
predict` imports it, so the device and the build machine run one implementation. It may use
only the standard library, numpy, tokenizers and onnxruntime: nothing from edgetransfer,
torch or transformers.
"""

from pathlib import Path

SOURCE = Path(__file__).with_name("predict.py")
