"""A user's own directions before they are fitted: the two draft groups being picked, the saved
groups, the imported vectors, and the rules between them; plus the pickers' pure parts
(gallery pages, rows by label).

Rules: a point is in one draft group only (adding it to A takes it out of B); a saved group has
a name (:data:`explorer.directions_file.NAME_RE`) and at least one point on each side; a session
keeps at most :data:`~explorer.directions_file.MAX_GROUPS` groups and
:data:`~explorer.directions_file.MAX_VECTORS` vectors, whether saved here or loaded from files,
so the fits a rerun may need stay bounded. Rows index the dataset's test set.

The state is plain dicts owned by the caller (the app keeps them in session state) and changed
in place, so the class is a view on them with no Streamlit in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.directions_file import MAX_GROUPS, MAX_VECTORS, NAME_RE, NAME_RULE

GALLERY = 24  # thumbnails per gallery page
SIDES = ("A", "B")


class GroupError(ValueError):
    """A change to the user's groups that the rules refuse; the message says why, in one line."""


def empty_draft() -> dict[str, list[int]]:
    return {"A": [], "B": []}


@dataclass
class DirectionGroups:
    """One user's groups for one dataset and imported vectors for one model.

    ``draft`` {"A": [rows], "B": [rows]} (A has the attribute, B has not), ``saved``
    {name: {"pos": [rows], "neg": [rows]}} (pos = A), ``vectors`` {name: [J floats]}."""

    draft: dict[str, list[int]] = field(default_factory=empty_draft)
    saved: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    vectors: dict[str, list[float]] = field(default_factory=dict)

    def add(self, side: str, rows: Iterable[int]) -> None:
        """Add ``rows`` to draft group ``side`` ("A" or "B") and take them out of the other."""
        if side not in SIDES:
            raise GroupError(f"no group {side!r}; the groups are A and B")
        other = "B" if side == "A" else "A"
        new = {int(r) for r in rows}
        self.draft[side] = sorted(set(self.draft[side]) | new)
        self.draft[other] = sorted(set(self.draft[other]) - new)

    def clear_draft(self) -> None:
        self.draft.update(empty_draft())

    def save(self, name: str | None) -> str:
        """Save the draft as group ``name`` (replacing one of that name) and clear the draft.
        Returns the message to show; raises :class:`GroupError` without changing anything."""
        name = (name or "").strip()
        if not NAME_RE.match(name):
            raise GroupError(f"Give the direction a name: {NAME_RULE}")
        a, b = self.draft["A"], self.draft["B"]
        if not a or not b:
            raise GroupError("Both groups need at least one point.")
        if name not in self.saved and len(self.saved) >= MAX_GROUPS:
            raise GroupError(f"You have {len(self.saved)} directions, the most a session keeps; delete one first.")
        self.saved[name] = {"pos": list(a), "neg": list(b)}
        self.clear_draft()
        return f"Saved '{name}': {len(a)} vs {len(b)} points."

    def delete(self, name: str) -> None:
        self.saved.pop(name, None)

    def merge(self, groups: Mapping[str, Mapping], vectors: Mapping[str, Sequence[float]], source: str) -> str:
        """Add groups and vectors read from a file (those of an existing name replace it), all
        or nothing. Returns the message to show; raises :class:`GroupError` when the session
        would then hold more than the limits."""
        n_groups, n_vectors = len(set(self.saved) | set(groups)), len(set(self.vectors) | set(vectors))
        if n_groups > MAX_GROUPS or n_vectors > MAX_VECTORS:
            raise GroupError(f"{source}: you would have {n_groups} groups and {n_vectors} vectors; a session keeps "
                             f"at most {MAX_GROUPS} and {MAX_VECTORS}: delete some first")
        self.saved.update({n: {"pos": list(g["pos"]), "neg": list(g["neg"])} for n, g in groups.items()})
        self.vectors.update({n: list(v) for n, v in vectors.items()})
        return f"Loaded {len(groups)} groups and {len(vectors)} vectors from {source}."

    def histogram_groups(self, d) -> dict[str, list[int]] | None:
        """For a direction fitted from one of the saved groups (an
        :class:`explorer.directions.Direction` with a ``user:`` key): its two groups, to overlay
        on the projection histogram; None for any other direction."""
        g = self.saved.get(d.name)
        if not d.key.startswith("user:") or not g:
            return None
        return {"group A": g["pos"], "group B": g["neg"]}


def gallery_pages(n: int, size: int = GALLERY) -> int:
    """The last gallery page number for a test set of ``n`` points (pages 0..this)."""
    return max(0, n // size - 1)


def gallery_rows(n: int, page: int, size: int = GALLERY) -> np.ndarray:
    """The test rows shown on gallery ``page``: ``size`` distinct rows of 0..n-1 drawn with
    the page number as seed (so a page always shows the same points)."""
    return np.random.default_rng(int(page)).choice(n, size=min(size, n), replace=False)


def rows_with_labels(labels: np.ndarray, chosen: Iterable[int]) -> np.ndarray:
    """Test rows whose label is one of ``chosen``: (k,) int64 indices into ``labels`` (N,)."""
    return np.flatnonzero(np.isin(np.asarray(labels), list(chosen)))
