"""What a checkpoint's test labels mean, and so how the app names and colours them.

A checkpoint stores one integer per test image (``arrays.test_labels``): an MNIST digit, a
Frey Face frame index (a position in the video, not a class), or for an image-folder model
the index of its sub-folder in ``meta["label_names"]`` (-1 for an image outside any
sub-folder). :func:`label_scheme` is the one place that decides which; every view that
colours a map, captions a test image or counts a label vote asks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Colours of class labels, by label value: plotly's D3 then Plotly qualitative palettes (as hex,
# so this module needs no plotly). A digit keeps its colour in every map, model and tab.
PALETTE = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22",
           "#17BECF", "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
           "#FF97FF", "#FECB52")
NO_CLASS_COLOUR = "#AAAAAA"  # a folder image outside any class (label -1)


@dataclass(frozen=True)
class LabelScheme:
    """How to read test labels. ``categorical``: labels are classes (a map gets one colour and
    legend entry per class, neighbours can vote); otherwise a continuous index (a colour scale).
    ``noun``: what one label is called ("digit", "class", "frame"). ``names``: class names by
    label value, when the checkpoint stores them. ``subject``: what one image shows, with its
    article ("a digit", "a face", "an image")."""

    categorical: bool
    noun: str
    subject: str
    names: tuple[str, ...] | None = None

    def name(self, label: int) -> str:
        """A label's display name: its class name if known, else the number."""
        i = int(label)
        if self.names is not None and 0 <= i < len(self.names):
            return self.names[i]
        return "none" if self.categorical and i < 0 else str(i)

    def colour(self, label: int) -> str:
        """A class label's colour (:data:`PALETTE` by value; grey for "none")."""
        i = int(label)
        return NO_CLASS_COLOUR if i < 0 else PALETTE[i % len(PALETTE)]

    def describe(self, label: int) -> str:
        """``"digit 7"``, ``"frame 1000"``, ``"class cat"``."""
        return f"{self.noun} {self.name(label)}"


def label_scheme(dataset: str, meta: Mapping | None = None) -> LabelScheme:
    """The scheme of a checkpoint with ``meta["dataset"] == dataset``: MNIST digits, Frey Face
    frame indices, or an image folder's classes (``meta["label_names"]``; a folder without
    sub-folders has no classes, and its labels are shown as plain numbers)."""
    names = (meta or {}).get("label_names")
    names = tuple(str(n) for n in names) if names else None
    if dataset == "mnist":
        return LabelScheme(True, "digit", "a digit", names)
    if dataset == "frey":
        return LabelScheme(False, "frame", "a face")
    return LabelScheme(names is not None, "class" if names else "label", "an image", names)
