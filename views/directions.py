"""Directions: move a latent point along attribute directions (smile, pose, slant, ...),
optionally holding others fixed; make your own direction from two groups of test points.

Widgets only: the groups' rules are :class:`explorer.direction_groups.DirectionGroups`, the
file :mod:`explorer.directions_file`, the edits :mod:`explorer.directions`.

Session-state keys (besides widget keys, all prefixed ``dir.``):

- ``dir.groups``: dict, dataset -> {direction name: {"pos": [rows], "neg": [rows]}}. The user's
  saved groups; rows index the test set, which every model of a dataset shares, so a group
  made on one model works on all of them.
- ``dir.vectors``: dict, model name -> {name: [J floats]}, directions imported as vectors.
- ``dir.draft``: dict, dataset -> {"A": [rows], "B": [rows]}, the groups being built.
- ``dir.computed``: dict, model name -> True once the user asked to compute the built-in
  directions of a checkpoint that carries none (needs the dataset folder).
- ``dir.msg``: (kind, text), a message from the last callback, shown once.

Cost per rerun: fits of the user's groups are cached on (checkpoint, name, the group's rows),
so a rerun fits only a group it has not seen; a session holds at most
:data:`explorer.directions_file.MAX_GROUPS` groups.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from explorer import direction_groups as dg
from explorer import directions as ed
from explorer import directions_file as df
from explorer import figures, images
from views import state
from views.context import ViewContext, load_model
from views.display import show
from views.points import pick_point

GROUPS_KEY, VECTORS_KEY, DRAFT_KEY, COMPUTED_KEY = "dir.groups", "dir.vectors", "dir.draft", "dir.computed"
MSG_KEY = "dir.msg"
AMOUNT_RANGE = 3.0  # amounts in test-set SDs along a direction


@st.cache_data(show_spinner="Computing directions from the dataset...", max_entries=8)
def _computed_builtin(path: str, mtime: float) -> tuple[dict, dict] | str:
    """The built-in directions of a checkpoint that carries none, or an error message."""
    ck, err = load_model(path, mtime)
    if ck is None:
        return err
    try:
        return ed.computed_directions(ck)
    except (ValueError, OSError) as e:
        return str(e).splitlines()[0]


@st.cache_data(show_spinner="Fitting your directions...", max_entries=512)
def _user_dirs(path: str, mtime: float, name: str, digest: str, _pos: list, _neg: list) -> list[ed.Direction] | str:
    """The directions of one saved group, or an error message. Keyed on the group's content
    (``digest`` of its rows), not on the rows or the test set, so a hit costs microseconds."""
    ck, err = load_model(path, mtime)
    if ck is None:
        return err
    try:
        return ed.user_directions(ck.arrays["test_mu"].numpy(), name, _pos, _neg)
    except ValueError as e:
        return str(e)


def _groups(dataset: str, model: str) -> dg.DirectionGroups:
    """This session's groups for ``dataset`` and vectors for ``model`` (views on session state)."""
    ss = st.session_state
    return dg.DirectionGroups(draft=ss.setdefault(DRAFT_KEY, {}).setdefault(dataset, dg.empty_draft()),
                              saved=ss.setdefault(GROUPS_KEY, {}).setdefault(dataset, {}),
                              vectors=ss.setdefault(VECTORS_KEY, {}).setdefault(model, {}))


def _all_directions(ctx: ViewContext, mu: np.ndarray | None, groups: dg.DirectionGroups
                    ) -> tuple[list[ed.Direction], list[str]]:
    """Built-in, user-group and imported-vector directions of this model, and problems."""
    problems: list[str] = []
    dirs = ed.builtin_directions(ctx.ck.arrays, ctx.ck.meta, ctx.z_dim, mu)
    if not dirs and st.session_state.get(COMPUTED_KEY, {}).get(ctx.name):
        got = _computed_builtin(str(ctx.entry.path), ctx.entry.mtime)
        if isinstance(got, str):
            problems.append(f"Could not compute the built-in directions: {got}")
        else:
            dirs = ed.builtin_directions(got[0], got[1], ctx.z_dim, mu)
    if mu is not None:
        for gname, g in groups.saved.items():
            got = _user_dirs(str(ctx.entry.path), ctx.entry.mtime, gname, ed.group_digest(g["pos"], g["neg"]),
                             g["pos"], g["neg"])
            if isinstance(got, str):
                problems.append(got)
            else:
                dirs += got
    for vname, v in groups.vectors.items():
        dirs.append(ed.vector_direction(mu, vname, v))
    return dirs, problems


def _compute_now(model: str) -> None:
    st.session_state.setdefault(COMPUTED_KEY, {})[model] = True


def render(ctx: ViewContext) -> None:
    mu = ctx.array("test_mu")
    groups = _groups(ctx.dataset, ctx.name)
    dirs, problems = _all_directions(ctx, mu, groups)
    for p in problems:
        st.warning(p)
    if not dirs:
        st.info("This checkpoint carries no built-in directions (`python -m trainer directions CKPT` adds "
                "them), and you have made none yet (see below).")
        if ctx.dataset in ("mnist", "frey"):
            st.button("Compute the built-in directions now (needs the dataset folder)", key=f"dir.{ctx.name}.compute",
                      on_click=_compute_now, args=(ctx.name,))
    else:
        _edit_panel(ctx, dirs, mu, groups)
    st.divider()
    _builder(ctx, mu, dirs, groups)


# --------------------------------------------------------------------------- editing


@st.fragment
def _edit_panel(ctx: ViewContext, dirs: list[ed.Direction], mu: np.ndarray | None, groups: dg.DirectionGroups) -> None:
    left, right = st.columns([2, 3])
    with left:
        base, base_desc, moves, hold, steps = _edit_controls(ctx, dirs)
    if not moves:
        right.info("Pick at least one direction.")
        return
    try:
        result = ed.apply_directions(base, moves, hold)
        t, path = ed.sweep(base, moves, hold, steps=steps)
    except ValueError as e:
        right.error(str(e))
        return
    with right:
        _edit_result(ctx, base, base_desc, result, path, hold)
        if mu is not None:
            first = moves[0][0]
            fig = figures.projection_figure(mu, first, base, result, groups=groups.histogram_groups(first))
            st.plotly_chart(fig, key=f"dir.{ctx.name}.hist")
    with st.expander("Quality of every direction"):
        st.dataframe(ed.quality_table(dirs), hide_index=True)
        st.caption("Held-out scores are cross-validated: the direction is fitted without the scored examples, "
                   "which are then predicted from their projection onto it alone. Frey Face folds are whole "
                   "100-frame blocks. Whether decoded images really change as claimed is measured in "
                   "bench/directions_quality.py.")


def _edit_controls(ctx: ViewContext, dirs: list[ed.Direction]):
    """The edit's widgets: (base (J,), its description, [(direction, amount)], held directions, steps)."""
    k = f"dir.{ctx.name}"
    by_key = {d.key: d for d in dirs}
    base, base_desc = pick_point(ctx, "Base point", key=f"{k}.base", default="Dataset point")
    chosen = st.multiselect("Directions to move along", list(by_key), default=[dirs[0].key],
                            format_func=lambda key: by_key[key].title, key=f"{k}.chosen")
    moves = []
    for key in chosen:
        d = by_key[key]
        a = st.slider(f"{d.title}: amount (test-set SDs)", -AMOUNT_RANGE, AMOUNT_RANGE, 1.5, step=0.1,
                      key=f"{k}.amount.{key}", help=d.description or None)
        st.caption(f"Quality: {ed.quality_text(d)}. Source: {d.source or 'n/a'}.")
        moves.append((d, a))
    others = [d.key for d in dirs if d.key not in chosen]
    more = f"; {len(others)} directions, scroll the row sideways for all" if len(others) > 2 else ""
    hold_keys = st.pills(f"Hold fixed (conditional edit: their projections do not change{more})", others,
                         selection_mode="multi", format_func=lambda key: by_key[key].title,
                         key=f"{k}.hold") if others else []
    hold = [by_key[h] for h in hold_keys or [] if h in by_key]
    steps = st.slider("Steps in the strip", 3, 15, 9, step=2, key=f"{k}.steps")
    return base, base_desc, moves, hold, steps


def _edit_result(ctx: ViewContext, base, base_desc: str, result, path, hold: list[ed.Direction]) -> None:
    """Base and result images, the strip from the opposite edit to the result, its downloads."""
    name, k, steps = ctx.name, f"dir.{ctx.name}", len(path)
    c1, c2 = st.columns(2)
    show(ctx.decode(base), caption=f"base: {base_desc}", target=220, where=c1)
    show(ctx.decode(result), caption="result", target=220, where=c2)
    st.button(state.USE_AS_CURRENT, key=f"{k}.send", on_click=state.set_z, args=(name, result))
    frames = ctx.decode(path)
    strip = images.tile(frames, ncols=steps)
    show(strip, target=900, max_factor=6,
         caption=f"from the opposite edit (left) through the base (middle) to the result (right), {steps} steps"
                 + (f"; holding {', '.join(h.title for h in hold)}" if hold else ""))
    d1, d2 = st.columns(2)
    # Encoded when clicked, not on every rerun (a GIF of the strip is the costly part of this view).
    d1.download_button("Download strip (PNG)", functools.partial(images.png_bytes, strip, factor=4),
                       file_name=f"{name}-direction.png", mime="image/png", key=f"{k}.png", on_click="ignore")
    d2.download_button("Download strip (GIF)", functools.partial(images.gif_bytes, frames, factor=6),
                       file_name=f"{name}-direction.gif", mime="image/gif", key=f"{k}.gif", on_click="ignore")


# --------------------------------------------------------------------------- user directions


def _change(dataset: str, model: str, change, *args) -> None:
    """Callback: ``change(groups, *args)`` (a :class:`DirectionGroups` method) on this session's
    groups; the text it returns, or the reason it refused, is shown on the next run."""
    try:
        msg = change(_groups(dataset, model), *args)
    except dg.GroupError as e:
        st.session_state[MSG_KEY] = ("error", str(e))
        return
    if msg:
        st.session_state[MSG_KEY] = ("success", msg)


def _save(dataset: str, model: str, name_key: str) -> None:
    _change(dataset, model, dg.DirectionGroups.save, st.session_state.get(name_key))


def _import(dataset: str, model: str, n_test: int, z_dim: int, key: str) -> None:
    f = st.session_state.get(key)
    if f is None:
        return
    try:
        groups, vectors = df.import_json(f.getvalue(), dataset, n_test, z_dim, filename=f.name)
    except df.DirectionsFileError as e:
        st.session_state[MSG_KEY] = ("error", str(e))
        return
    _change(dataset, model, dg.DirectionGroups.merge, groups, vectors, df.clip(f.name, 60))


def _builder(ctx: ViewContext, mu: np.ndarray | None, dirs: list[ed.Direction], groups: dg.DirectionGroups) -> None:
    st.subheader("Your own directions")
    msg = st.session_state.pop(MSG_KEY, None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(msg[1])
    if mu is None:
        st.info(ctx.problems.get("test_mu", "This checkpoint has no encoded test set to pick groups from."))
        return
    ds, k = ctx.dataset, f"dir.{ctx.name}.b"
    st.caption("Pick two groups of test points, A (has the attribute) and B (has not): the direction points "
               "from B to A, by both methods (difference of group means, and logistic-regression normal).")
    how = st.segmented_control("Pick points from", ["Map (lasso)", "Gallery", "Labels"], default="Map (lasso)",
                               key=f"{k}.how")
    picker = {"Map (lasso)": _pick_from_map, "Gallery": _pick_from_gallery}.get(how, _pick_by_label)
    picks = picker(ctx, mu, k)
    if picks is not None:
        for col, side in zip(st.columns(2), dg.SIDES):
            rows, label, key = picks[side]
            col.button(label, key=key, on_click=_change, args=(ds, ctx.name, dg.DirectionGroups.add, side, rows),
                       disabled=not len(rows))
    st.markdown(f"**Draft:** group A {len(groups.draft['A'])} points, group B {len(groups.draft['B'])} points")
    c = st.columns([3, 1, 1])
    c[0].text_input("Name of the direction", key=f"{k}.name", placeholder="e.g. open mouth")
    c[1].button("Save direction", key=f"{k}.save", on_click=_save, args=(ds, ctx.name, f"{k}.name"))
    c[2].button("Clear draft", key=f"{k}.clear", on_click=_change, args=(ds, ctx.name, dg.DirectionGroups.clear_draft))
    for gname, g in groups.saved.items():
        q = next((ed.quality_text(d) for d in dirs if d.key == f"user:{gname}.mean_difference"), "")
        cc = st.columns([4, 1])
        cc[0].markdown(f"- **{gname}**: {len(g['pos'])} vs {len(g['neg'])} points. {q}")
        cc[1].button("Delete", key=f"{k}.del.{gname}", on_click=_change,
                     args=(ds, ctx.name, dg.DirectionGroups.delete, gname))
    c = st.columns(2)
    c[0].download_button("Download your directions (JSON)",
                         df.export_json(ctx.name, ds, len(mu), ctx.z_dim, groups.saved, groups.vectors),
                         file_name=f"{ds}-directions.json", mime="application/json", key=f"{k}.export",
                         on_click="ignore", disabled=not (groups.saved or groups.vectors))
    c[1].file_uploader("Load directions (JSON)", type=["json"], key=f"{k}.import", on_change=_import,
                       args=(ds, ctx.name, len(mu), ctx.z_dim, f"{k}.import"))


# Pickers: widgets that choose test rows. Each returns {side: (rows, button label, button key)}
# for the "add to group A / B" buttons, or None when it has nothing to offer.


def _pick_from_map(ctx: ViewContext, mu: np.ndarray, k: str) -> dict | None:
    emb, labels = ctx.array("test_embedding"), ctx.array("test_labels")
    if emb is None or labels is None:
        st.info("No stored map for this checkpoint; use the gallery.")
        return None
    fig = figures.map_figure(emb, labels, ctx.labels)
    fig.update_layout(height=420)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key=f"{k}.map")
    rows = figures.selected_rows(event)
    return {side: (rows, f"Add {len(rows)} selected to group {side}", f"{k}.map{side}") for side in dg.SIDES}


def _pick_from_gallery(ctx: ViewContext, mu: np.ndarray, k: str) -> dict:
    page = st.number_input("Gallery page", 0, dg.gallery_pages(len(mu)), 0, key=f"{k}.page")
    rows = dg.gallery_rows(len(mu), page)
    thumbs = ctx.decode(mu[rows])
    cols = st.columns(8)
    picks: dict[str, list[int]] = {side: [] for side in dg.SIDES}
    for i, r in enumerate(rows):
        with cols[i % 8]:
            show(thumbs[i], caption=f"#{int(r)}", target=84, max_factor=4)
            v = st.pills(f"#{int(r)}", list(dg.SIDES), key=f"{k}.pick.{int(r)}", label_visibility="collapsed")
            if v:
                picks[v].append(int(r))
    st.caption("Thumbnails are the model's reconstructions of random test images.")
    return {side: (picks[side], f"Add {len(picks[side])} picks to group {side}", f"{k}.gal{side}") for side in dg.SIDES}


def _pick_by_label(ctx: ViewContext, mu: np.ndarray, k: str) -> dict | None:
    labels = ctx.array("test_labels")
    if labels is None or ctx.dataset != "mnist":
        st.info("Picking by label needs MNIST digit labels; use the map or the gallery.")
        return None
    picks = {}
    for col, side in zip(st.columns(2), dg.SIDES):
        digits = col.multiselect(f"Digits for group {side}", list(range(10)), key=f"{k}.lab{side}")
        rows = dg.rows_with_labels(labels, digits)
        picks[side] = (rows, f"Add {len(rows)} to group {side}", f"{k}.lab{side}b")
    return picks

