"""Label tables shared by the registry, the synthetic-data engine and the dataset readers.

Plain data, no dependencies, so any module may import it.
"""

from __future__ import annotations

#: MRBrainS13 challenge labels (Mendrik et al., Comput Intell Neurosci 2015), ids as in the
#: challenge's LabelsForTraining files.
MRBRAINS13_LABELS: dict[int, str] = {
    0: "background",
    1: "cortical grey matter",
    2: "basal ganglia",
    3: "white matter",
    4: "white matter lesions",
    5: "extracerebral CSF",
    6: "ventricles",
    7: "cerebellum",
    8: "brainstem",
}
