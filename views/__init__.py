"""The app's tabs: one module per view, each a thin ``render(ctx)`` over ``explorer`` functions.

Adding a tab: write ``views/<name>.py`` with ``def render(ctx: ViewContext) -> None`` (see
``views/context.py`` for what ``ctx`` offers: the loaded checkpoint, cached decoding, the
current latent point) and append ``("Label", module.render)`` to ``TABS`` in
``app_page.py``. Only the open tab runs, so a view may do real work when rendered.

Session-state keys shared between views are documented in ``views/state.py``.
"""
