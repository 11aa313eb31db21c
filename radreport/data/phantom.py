"""A thorax CT phantom in Hounsfield units with findings drawn in, plus their masks.

Coordinates follow DICOM patient space (LPS): columns run to the patient's left, rows to
the back, slices to the head. In-plane positions are fractions of the half field of view
(u across, v front-to-back), height is t from the lung bases (0) to the apices (1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FINDINGS = ("nodule", "pleural_effusion", "consolidation", "pneumothorax", "cardiomegaly")
INCIDENTAL_NODULE_MM = 6.0  # solid nodules up to 6 mm need no follow-up (Fleischner)

HU_AIR, HU_LUNG, HU_FAT, HU_SOFT_TISSUE = -1000.0, -850.0, -100.0, 40.0
HU_FLUID, HU_VESSEL, HU_CANCELLOUS, HU_CORTICAL = 10.0, -150.0, 350.0, 900.0
NOISE_HU = 12.0
FIELD_OF_VIEW_MM = 360.0
LUNG_CENTRE_U = 0.38  # lungs sit at u = +-0.38 (positive u: patient's left)


@dataclass(frozen=True)
class Finding:
    name: str
    side: str = ""  # left, right or bilateral
    severity: str = ""  # small / moderate / large, or mild / moderate for the heart
    lobe: str = ""  # upper or lower
    diameter_mm: float = 0.0

    @property
    def incidental(self) -> bool:
        """Shown in the images and the detailed report, left out of the impression."""
        return self.name == "nodule" and self.diameter_mm <= INCIDENTAL_NODULE_MM


@dataclass
class Phantom:
    hounsfield: np.ndarray  # (slices, rows, columns) float32
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # finding -> bool volume
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Grid:
    u: np.ndarray  # (1, 1, size)
    v: np.ndarray  # (1, size, 1)
    t: np.ndarray  # (slices, 1, 1)
    pixel_mm: float
    slice_mm: float


def make_grid(slices: int, size: int, slice_mm: float) -> Grid:
    centres = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    heights = (np.arange(slices) + 0.5) / slices
    return Grid(
        u=centres.reshape(1, 1, size),
        v=centres.reshape(1, size, 1),
        t=heights.reshape(slices, 1, 1),
        pixel_mm=FIELD_OF_VIEW_MM / size,
        slice_mm=slice_mm,
    )


def _ellipse(grid: Grid, cu: float, cv: float, a, b) -> np.ndarray:
    return ((grid.u - cu) / a) ** 2 + ((grid.v - cv) / b) ** 2 <= 1.0


def _side_sign(side: str) -> float:
    return 1.0 if side == "left" else -1.0


def lung_mask(grid: Grid, side: str, scale: float = 1.0) -> np.ndarray:
    """A lung narrowing towards its apex; `scale` < 1 shrinks it towards the hilum."""
    taper = np.sqrt(np.clip(1.0 - grid.t**2, 0.0, 1.0))
    a, b = 0.30 * taper * scale, 0.42 * taper * scale
    centre = _side_sign(side) * (LUNG_CENTRE_U - 0.30 * taper * (1.0 - scale))
    return _ellipse(grid, centre, 0.0, np.maximum(a, 1e-3), np.maximum(b, 1e-3))


def heart_mask(grid: Grid, radius: float) -> np.ndarray:
    dome = np.sqrt(np.clip(1.0 - ((grid.t - 0.15) / 0.4) ** 2, 0.0, 1.0))
    return _ellipse(grid, 0.10, -0.12, np.maximum(radius * dome, 1e-3), radius * dome * 0.85 + 1e-3)


def _bones(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(cortical, cancellous) masks: spine, sternum and ribs that come and go with height."""
    spine_distance = np.hypot(grid.u, (grid.v - 0.42) / 1.1)
    cancellous = spine_distance <= 0.08
    cortical = (spine_distance > 0.08) & (spine_distance <= 0.10)
    cortical = cortical | (_ellipse(grid, 0.0, -0.50, 0.05, 0.025) & (grid.t > 0.2))
    angle = np.arctan2(grid.v / 0.55, grid.u / 0.80)
    on_ring = np.abs(np.hypot(grid.u / 0.80, grid.v / 0.55) - 0.96) < 0.035
    rib_phase = np.sin(angle * 9.0) > 0.6
    rib_level = np.sin(grid.t * 2 * np.pi * 6.0 + angle) > 0.2
    return cortical | (on_ring & rib_phase & rib_level), cancellous


def normal_thorax(grid: Grid, heart_radius: float, rng: np.random.Generator) -> np.ndarray:
    shape = (grid.t.shape[0], grid.v.shape[1], grid.u.shape[2])
    hounsfield = np.full(shape, HU_AIR, dtype=np.float32)
    hounsfield[np.broadcast_to(_ellipse(grid, 0.0, 0.0, 0.88, 0.62), shape)] = HU_FAT
    hounsfield[np.broadcast_to(_ellipse(grid, 0.0, 0.0, 0.80, 0.55), shape)] = HU_SOFT_TISSUE
    lungs = lung_mask(grid, "left") | lung_mask(grid, "right")
    hounsfield[lungs] = HU_LUNG
    vessels = lungs & (rng.random(shape) < 0.015)
    hounsfield[vessels] = HU_VESSEL
    hounsfield[heart_mask(grid, heart_radius)] = HU_SOFT_TISSUE
    hounsfield[np.broadcast_to(_ellipse(grid, 0.12, 0.28, 0.06, 0.06), shape)] = HU_SOFT_TISSUE
    cortical, cancellous = _bones(grid)
    hounsfield[np.broadcast_to(cancellous, shape)] = HU_CANCELLOUS
    hounsfield[np.broadcast_to(cortical, shape)] = HU_CORTICAL
    return hounsfield


def _aerated(phantom: Phantom) -> np.ndarray:
    """Lung still holding air: later findings replace air, never an earlier finding."""
    return phantom.hounsfield <= HU_VESSEL


def _lobe_band(grid: Grid, lobe: str) -> np.ndarray:
    return grid.t > 0.55 if lobe == "upper" else grid.t < 0.45


def draw_nodule(phantom: Phantom, grid: Grid, finding: Finding, rng: np.random.Generator):
    """A solid sphere with partial-volume edges, centred on a slice so even a 4 mm nodule
    shows; its mask is the voxels more than half covered."""
    lung = lung_mask(grid, finding.side, scale=0.8) & _aerated(phantom)
    candidates = np.argwhere(lung & _lobe_band(grid, finding.lobe))
    if len(candidates) == 0:  # a short stack may have no slice in that lobe's band
        candidates = np.argwhere(lung)
    slice_index, row, column = candidates[int(rng.integers(len(candidates)))]
    radius_mm = finding.diameter_mm / 2.0
    distance_mm = np.sqrt(
        ((grid.u - grid.u[0, 0, column]) * FIELD_OF_VIEW_MM / 2) ** 2
        + ((grid.v - grid.v[0, row, 0]) * FIELD_OF_VIEW_MM / 2) ** 2
        + ((np.arange(grid.t.shape[0]).reshape(-1, 1, 1) - slice_index) * grid.slice_mm) ** 2
    )
    coverage = np.clip((radius_mm - distance_mm) / grid.pixel_mm + 0.5, 0.0, 1.0)
    phantom.hounsfield += (coverage * (HU_SOFT_TISSUE - phantom.hounsfield)).astype(np.float32)
    phantom.masks["nodule"] = coverage > 0.5


def draw_effusion(phantom: Phantom, grid: Grid, finding: Finding):
    """Fluid layering in the dependent (posterior) lung bases, up to a level by severity."""
    level = {"small": 0.24, "moderate": 0.08, "large": -0.10}[finding.severity]
    sides = ("left", "right") if finding.side == "bilateral" else (finding.side,)
    fluid = np.zeros(phantom.hounsfield.shape, dtype=bool)
    for side in sides:
        fluid |= lung_mask(grid, side) & (grid.v > level) & (grid.t < 0.6)
    phantom.hounsfield[fluid] = HU_FLUID
    phantom.masks["pleural_effusion"] = fluid


def draw_consolidation(phantom: Phantom, grid: Grid, finding: Finding, rng: np.random.Generator):
    centre_t = 0.7 if finding.lobe == "upper" else 0.28
    centre_u = _side_sign(finding.side) * LUNG_CENTRE_U + rng.uniform(-0.08, 0.08)
    blob = (
        ((grid.u - centre_u) / rng.uniform(0.12, 0.18)) ** 2
        + ((grid.v - rng.uniform(-0.15, 0.15)) / rng.uniform(0.14, 0.22)) ** 2
        + ((grid.t - centre_t) / 0.16) ** 2
    ) <= 1.0
    region = blob & lung_mask(grid, finding.side) & _aerated(phantom)
    phantom.hounsfield[region] = HU_SOFT_TISSUE - 10.0
    phantom.masks["consolidation"] = region


def draw_pneumothorax(phantom: Phantom, grid: Grid, finding: Finding):
    """Air between a collapsed lung and the chest wall, in the upper two thirds."""
    scale = {"small": 0.85, "moderate": 0.72, "large": 0.55}[finding.severity]
    lung = lung_mask(grid, finding.side)
    collapsed = lung_mask(grid, finding.side, scale=scale)
    air = lung & ~collapsed & (grid.t > 0.33) & _aerated(phantom)
    phantom.hounsfield[air] = HU_AIR
    phantom.masks["pneumothorax"] = air


HEART_RADIUS = {"": 0.26, "mild": 0.33, "moderate": 0.38}


def draw_phantom(
    slices: int, size: int, slice_mm: float, findings: list[Finding], rng: np.random.Generator
) -> Phantom:
    """The phantom with `findings` drawn in the order that keeps each one visible: fluid,
    then consolidation and pneumothorax in the air that is left, nodules last."""
    grid = make_grid(slices, size, slice_mm)
    heart = next((f for f in findings if f.name == "cardiomegaly"), None)
    radius = HEART_RADIUS[heart.severity if heart else ""]
    phantom = Phantom(normal_thorax(grid, radius, rng), findings=list(findings))
    if heart:
        phantom.masks["cardiomegaly"] = heart_mask(grid, radius)
    by_name = {finding.name: finding for finding in findings}
    if "pleural_effusion" in by_name:
        draw_effusion(phantom, grid, by_name["pleural_effusion"])
    if "consolidation" in by_name:
        draw_consolidation(phantom, grid, by_name["consolidation"], rng)
    if "pneumothorax" in by_name:
        draw_pneumothorax(phantom, grid, by_name["pneumothorax"])
    if "nodule" in by_name:
        draw_nodule(phantom, grid, by_name["nodule"], rng)
    phantom.hounsfield += rng.normal(0.0, NOISE_HU, phantom.hounsfield.shape).astype(np.float32)
    return phantom
