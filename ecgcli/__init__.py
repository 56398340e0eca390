"""ecgcli: label-efficient 12-lead ECG classification on PTB-XL.

The package is split into a core library (data, models, augmentations, losses, training,
metrics, statistics, checkpoints) that knows nothing about the terminal, and a thin command
line layer in :mod:`ecgcli.cli`.
"""

__version__ = "0.2.0"

#: The five PTB-XL diagnostic superclasses, in the fixed order every label matrix, model
#: output and checkpoint uses.
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "HYP", "CD")

#: The six label sets of the official PTB-XL benchmark (see :mod:`ecgcli.data.tasks`); here so
#: that command-line help can list them without importing the data stack.
TASKS: tuple[str, ...] = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
DEFAULT_TASK = "superdiagnostic"

#: The twelve standard leads in PTB-XL's storage order.
LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "AVR",
    "AVL",
    "AVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)
