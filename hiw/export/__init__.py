"""Trainer exports of a built dataset: the CLUTCH layout and the HumanML3D layout, both in the paper's 198-number
motion features, split by source video."""

from hiw.export.clutch import export_clutch
from hiw.export.common import ExportSummary
from hiw.export.humanml3d import export_humanml3d

__all__ = ["ExportSummary", "export_clutch", "export_humanml3d"]
