"""The named variants of the operations, which travel with the validated
problem (fastxent._validate) into the kernels of either backend in place of
boolean flags. Each value is the name of the input argument the variant takes,
so that error messages can name it."""

import enum


class Scores(enum.Enum):
    """What the rows of a class loss hold."""

    LOGITS = "logits"  # cross_entropy: unnormalised scores
    LOG_PROBS = "log_probs"  # nll_loss: log-probabilities


class Transform(enum.Enum):
    """What softmax_rows makes of a row."""

    SOFTMAX = "softmax"
    LOG_SOFTMAX = "log_softmax"


class BinaryInput(enum.Enum):
    """What the elements of a binary cross-entropy are."""

    LOGITS = "logits"  # binary_cross_entropy_with_logits
    PROBS = "probs"  # binary_cross_entropy
