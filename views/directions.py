"""Directions: move a latent point along attribute directions (smile, pose, slant, ...),
optionally holding others fixed; make your own direction from two groups of test points.

Session-state keys (besides widget keys, all prefixed ``dir.``):

- ``dir.groups``: dict, dataset -> {direction name: {"pos": [rows], "neg": [rows]}}. The user's
  saved groups; rows index the test set, which every model of a dataset shares, so a group
  made on one model works on all of them.
- ``dir.vectors``: dict, model name -> {name: [J floats]}, directions imported as vectors.
- ``dir.draft``: dict, dataset -> {"A": [rows], "B": [rows]}, the groups being built.
- ``dir.computed``: dict, model name -> True once the user asked to compute the built-in
  directions of a checkpoint that carries none (needs the dataset folder).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import directions as ed
from explorer import figures, images
from views import state
from views.context import ViewContext
from views.display import show
from views.points import pick_point

GROUPS_KEY, VECTORS_KEY, DRAFT_KEY, COMPUTED_KEY = "dir.groups", "dir.vectors", "dir.draft", "dir.computed"
AMOUNT_RANGE = 3.0  # amounts in test-set SDs along a direction
GALLERY = 24


@st.cache_data(show_spinner="Computing directions from the dataset...", max_entries=8)
def _computed_builtin(path: str, mtime: float) -> tuple[dict, dict] | str:
    """The built-in directions of a checkpoint that carries none, or an error message."""
    from views.context import load_model

    ck, err = load_model(path, mtime)
    if ck is None:
        return err
    try:
        arrays, meta = ed.compute_directions(ck)
    except (ValueError, OSError) as e:
        return str(e).splitlines()[0]
    return {"direction." + k: v for k, v in arrays.items()}, {"directions": meta}


@st.cache_data(show_spinner=False, max_entries=64)
def _user_dirs(path: str, mtime: float, mu: np.ndarray, name: str, pos: tuple, neg: tuple) -> list[ed.Direction] | str:
    try:
        return ed.user_directions(mu, name, list(pos), list(neg))
    except ValueError as e:
        return str(e)


def _all_directions(ctx: ViewContext, mu: np.ndarray | None) -> tuple[list[ed.Direction], list[str]]:
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
        for gname, g in st.session_state.get(GROUPS_KEY, {}).get(ctx.dataset, {}).items():
            got = _user_dirs(str(ctx.entry.path), ctx.entry.mtime, mu, gname, tuple(g["pos"]), tuple(g["neg"]))
            if isinstance(got, str):
                problems.append(got)
            else:
                dirs += got
    for vname, v in st.session_state.get(VECTORS_KEY, {}).get(ctx.name, {}).items():
        dirs.append(ed.vector_direction(mu, vname, v))
    return dirs, problems


def _compute_now(model: str) -> None:
    st.session_state.setdefault(COMPUTED_KEY, {})[model] = True


def render(ctx: ViewContext) -> None:
    mu = ctx.array("test_mu")
    dirs, problems = _all_directions(ctx, mu)
    for p in problems:
        st.warning(p)
    if not dirs:
        st.info("This checkpoint carries no built-in directions (`python -m trainer directions CKPT` adds "
                "them), and you have made none yet (see below).")
        if ctx.dataset in ("mnist", "frey"):
            st.button("Compute the built-in directions now (needs the dataset folder)", key=f"dir.{ctx.name}.compute",
                      on_click=_compute_now, args=(ctx.name,))
    else:
        _edit_panel(ctx, dirs, mu)
    st.divider()
    _builder(ctx, mu, dirs)


@st.fragment
def _edit_panel(ctx: ViewContext, dirs: list[ed.Direction], mu: np.ndarray | None) -> None:
    name = ctx.name
    k = f"dir.{name}"
    by_key = {d.key: d for d in dirs}
    left, right = st.columns([2, 3])
    with left:
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
        others = [d for d in dirs if d.key not in chosen]
        hold_keys = st.pills("Hold fixed (conditional edit: their projections do not change)",
                             [d.key for d in others], selection_mode="multi", format_func=lambda key: by_key[key].title,
                             key=f"{k}.hold") if others else []
        hold = [by_key[h] for h in hold_keys or [] if h in by_key]
        steps = st.slider("Steps in the strip", 3, 15, 9, step=2, key=f"{k}.steps")
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
        c1, c2 = st.columns(2)
        show(ctx.decode(base), caption=f"base: {base_desc}", target=220, where=c1)
        show(ctx.decode(result), caption="result", target=220, where=c2)
        st.button("Send the result to the sliders", key=f"{k}.send", on_click=state.set_z, args=(name, result))
        frames = ctx.decode(path)
        strip = images.tile(frames, ncols=steps)
        show(strip, target=900, max_factor=6,
             caption=f"from the opposite edit (left) through the base (middle) to the result (right), {steps} steps"
                     + (f"; holding {', '.join(h.title for h in hold)}" if hold else ""))
        d1, d2 = st.columns(2)
        d1.download_button("Download strip (PNG)", images.png_bytes(strip, factor=4), file_name=f"{name}-direction.png",
                           mime="image/png", key=f"{k}.png", on_click="ignore")
        d2.download_button("Download strip (GIF)", images.gif_bytes(frames, factor=6), file_name=f"{name}-direction.gif",
                           mime="image/gif", key=f"{k}.gif", on_click="ignore")
        if mu is not None:
            first = moves[0][0]
            groups = None
            g = st.session_state.get(GROUPS_KEY, {}).get(ctx.dataset, {}).get(first.name)
            if first.key.startswith("user:") and g:
                groups = {"group A": g["pos"], "group B": g["neg"]}
            st.plotly_chart(ed.projection_figure(mu, first, base, result, groups=groups), key=f"{k}.hist")
    with st.expander("Quality of every direction"):
        st.dataframe(
            [{"direction": d.label, "method": ed.METHOD_LABELS.get(d.method, d.method), "held-out": ed.quality_text(d),
              "source": d.source} for d in dirs],
            hide_index=True,
        )
        st.caption("Held-out scores are cross-validated: the direction is fitted without the scored examples, "
                   "which are then predicted from their projection onto it alone. Frey Face folds are whole "
                   "100-frame blocks. Whether decoded images really change as claimed is measured in "
                   "bench/directions_quality.py.")


# --------------------------------------------------------------------------- user directions


def _draft(dataset: str) -> dict:
    return st.session_state.setdefault(DRAFT_KEY, {}).setdefault(dataset, {"A": [], "B": []})


def _add(dataset: str, side: str, rows) -> None:
    d = _draft(dataset)
    other = "B" if side == "A" else "A"
    new = {int(r) for r in rows}
    d[side] = sorted(set(d[side]) | new)
    d[other] = sorted(set(d[other]) - new)  # a point belongs to one group only


def _clear_draft(dataset: str) -> None:
    st.session_state.setdefault(DRAFT_KEY, {})[dataset] = {"A": [], "B": []}


def _save(dataset: str, name_key: str) -> None:
    name = (st.session_state.get(name_key) or "").strip()
    d = _draft(dataset)
    if not ed.NAME_RE.match(name):
        st.session_state["dir.msg"] = ("error", "Give the direction a name: 1-60 letters, digits, spaces or _ . + -")
        return
    if not d["A"] or not d["B"]:
        st.session_state["dir.msg"] = ("error", "Both groups need at least one point.")
        return
    st.session_state.setdefault(GROUPS_KEY, {}).setdefault(dataset, {})[name] = {"pos": list(d["A"]), "neg": list(d["B"])}
    st.session_state["dir.msg"] = ("success", f"Saved '{name}': {len(d['A'])} vs {len(d['B'])} points.")
    _clear_draft(dataset)


def _delete(dataset: str, name: str) -> None:
    st.session_state.get(GROUPS_KEY, {}).get(dataset, {}).pop(name, None)


def _import(ctx: ViewContext, n_test: int, key: str) -> None:
    f = st.session_state.get(key)
    if f is None:
        return
    try:
        groups, vectors = ed.import_json(f.getvalue(), ctx.dataset, n_test, ctx.z_dim, filename=f.name)
    except ed.DirectionsFileError as e:
        st.session_state["dir.msg"] = ("error", str(e))
        return
    st.session_state.setdefault(GROUPS_KEY, {}).setdefault(ctx.dataset, {}).update(groups)
    st.session_state.setdefault(VECTORS_KEY, {}).setdefault(ctx.name, {}).update(vectors)
    st.session_state["dir.msg"] = ("success", f"Loaded {len(groups)} groups and {len(vectors)} vectors from {f.name}.")


def _builder(ctx: ViewContext, mu: np.ndarray | None, dirs: list[ed.Direction]) -> None:
    st.subheader("Your own directions")
    msg = st.session_state.pop("dir.msg", None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(msg[1])
    if mu is None:
        st.info(ctx.problems.get("test_mu", "This checkpoint has no encoded test set to pick groups from."))
        return
    ds, k = ctx.dataset, f"dir.{ctx.name}.b"
    draft = _draft(ds)
    st.caption("Pick two groups of test points, A (has the attribute) and B (has not): the direction points "
               "from B to A, by both methods (difference of group means, and logistic-regression normal).")
    how = st.segmented_control("Pick points from", ["Map (lasso)", "Gallery", "Labels"], default="Map (lasso)",
                               key=f"{k}.how")
    if how == "Map (lasso)":
        emb, labels = ctx.array("test_embedding"), ctx.array("test_labels")
        if emb is None or labels is None:
            st.info("No stored map for this checkpoint; use the gallery.")
        else:
            categorical = ds == "mnist" or bool(ctx.ck.meta.get("label_names"))
            fig = figures.map_figure(emb, labels, categorical=categorical, label_names=ctx.ck.meta.get("label_names"))
            fig.update_layout(height=420)
            event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key=f"{k}.map")
            rows = figures.selected_rows(event)
            c = st.columns(2)
            c[0].button(f"Add {len(rows)} selected to group A", key=f"{k}.mapA", on_click=_add, args=(ds, "A", rows),
                        disabled=not rows)
            c[1].button(f"Add {len(rows)} selected to group B", key=f"{k}.mapB", on_click=_add, args=(ds, "B", rows),
                        disabled=not rows)
    elif how == "Gallery":
        page = st.number_input("Gallery page", 0, max(0, len(mu) // GALLERY - 1), 0, key=f"{k}.page")
        rows = np.random.default_rng(int(page)).choice(len(mu), size=min(GALLERY, len(mu)), replace=False)
        thumbs = ctx.decode(mu[rows])
        cols = st.columns(8)
        picks = {"A": [], "B": []}
        for i, r in enumerate(rows):
            with cols[i % 8]:
                show(thumbs[i], caption=f"#{int(r)}", target=84, max_factor=4)
                v = st.pills(f"#{int(r)}", ["A", "B"], key=f"{k}.pick.{int(r)}", label_visibility="collapsed")
                if v:
                    picks[v].append(int(r))
        c = st.columns(2)
        c[0].button(f"Add {len(picks['A'])} picks to group A", key=f"{k}.galA", on_click=_add, args=(ds, "A", picks["A"]),
                    disabled=not picks["A"])
        c[1].button(f"Add {len(picks['B'])} picks to group B", key=f"{k}.galB", on_click=_add, args=(ds, "B", picks["B"]),
                    disabled=not picks["B"])
        st.caption("Thumbnails are the model's reconstructions of random test images.")
    else:
        labels = ctx.array("test_labels")
        if labels is None or ds != "mnist":
            st.info("Picking by label needs MNIST digit labels; use the map or the gallery.")
        else:
            c = st.columns(2)
            la = c[0].multiselect("Digits for group A", list(range(10)), key=f"{k}.labA")
            lb = c[1].multiselect("Digits for group B", list(range(10)), key=f"{k}.labB")
            ra, rb = np.flatnonzero(np.isin(labels, la)), np.flatnonzero(np.isin(labels, lb))
            c[0].button(f"Add {len(ra)} to group A", key=f"{k}.labAb", on_click=_add, args=(ds, "A", ra), disabled=not la)
            c[1].button(f"Add {len(rb)} to group B", key=f"{k}.labBb", on_click=_add, args=(ds, "B", rb), disabled=not lb)
    st.markdown(f"**Draft:** group A {len(draft['A'])} points, group B {len(draft['B'])} points")
    c = st.columns([3, 1, 1])
    c[0].text_input("Name of the direction", key=f"{k}.name", placeholder="e.g. open mouth")
    c[1].button("Save direction", key=f"{k}.save", on_click=_save, args=(ds, f"{k}.name"))
    c[2].button("Clear draft", key=f"{k}.clear", on_click=_clear_draft, args=(ds,))
    saved = st.session_state.get(GROUPS_KEY, {}).get(ds, {})
    for gname, g in saved.items():
        q = next((ed.quality_text(d) for d in dirs if d.key == f"user:{gname}.mean_difference"), "")
        cc = st.columns([4, 1])
        cc[0].markdown(f"- **{gname}**: {len(g['pos'])} vs {len(g['neg'])} points. {q}")
        cc[1].button("Delete", key=f"{k}.del.{gname}", on_click=_delete, args=(ds, gname))
    c = st.columns(2)
    vectors = st.session_state.get(VECTORS_KEY, {}).get(ctx.name, {})
    c[0].download_button("Download your directions (JSON)",
                         ed.export_json(ctx.name, ds, len(mu), ctx.z_dim, saved, vectors),
                         file_name=f"{ds}-directions.json", mime="application/json", key=f"{k}.export",
                         on_click="ignore", disabled=not (saved or vectors))
    c[1].file_uploader("Load directions (JSON)", type=["json"], key=f"{k}.import", on_change=_import,
                       args=(ctx, len(mu), f"{k}.import"))
