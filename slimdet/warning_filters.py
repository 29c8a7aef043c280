"""Warnings that are not a slimdet user's to act on, silenced when ``slimdet`` is imported.

Detectron2 compiles a few helpers with ``torch.jit.script``, which PyTorch deprecates with a
FutureWarning in every process that imports or calls them: data loader workers and evaluation
included, 90 copies in one ``make demo``. A tool that imports Detectron2 before slimdet shows
it once.
"""
import warnings

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                        category=FutureWarning)
