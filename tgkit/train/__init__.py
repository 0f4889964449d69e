"""Training and evaluation: the paper's loss and metrics, a hookable trainer, ablations.

* :mod:`tgkit.train.loss`: loss_Q + mu loss_T (paper eq. 10-11), complex-safe masked MSE.
* :mod:`tgkit.train.metrics`: MAE_all, MAE_sample(^cha), MAE_block(^cha), orbital heatmaps (meV).
* :mod:`tgkit.train.trainer`: :class:`Trainer` (Adam + ReduceLROnPlateau, exact resume) and
  :func:`evaluate`.
* :mod:`tgkit.train.hooks`: checkpointing, early stopping, LR monitor, JSONL/CSV logger,
  TensorBoard, tqdm.
* :mod:`tgkit.train.distributed`: device choice and data parallelism under ``torchrun``.
* :mod:`tgkit.train.run`: config -> run directory (``tgkit train|eval|predict``).
* :mod:`tgkit.train.ablate`: the four setups x N seeds, Table 1/2 (``tgkit ablate``).
"""

from tgkit.train.hooks import (
    Checkpoint,
    EarlyStopping,
    Hook,
    LRMonitor,
    MetricsLogger,
    PrintValidation,
    ProgressBar,
    StepRecord,
    TensorBoard,
)
from tgkit.train.loss import LossParts, TraceGradLoss, masked_mse
from tgkit.train.metrics import EvalResult, MetricAccumulator, challenge
from tgkit.train.run import evaluate_run, predict, train
from tgkit.train.trainer import Trainer, evaluate

__all__ = [
    "Checkpoint", "EarlyStopping", "EvalResult", "Hook", "LRMonitor", "LossParts",
    "MetricAccumulator", "MetricsLogger", "PrintValidation", "ProgressBar", "StepRecord",
    "TensorBoard", "TraceGradLoss", "Trainer", "challenge", "evaluate", "evaluate_run",
    "masked_mse", "predict", "train",
]
