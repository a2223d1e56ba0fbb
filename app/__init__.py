"""The Gradio app: ``app.ui.build_ui`` (the Blocks factory) and ``launch``, ``app.service``
(request handlers in plain Python), ``app.results`` (what a request writes), ``app.rebuild``
(background index rebuilds), ``app.cli`` (``foley app``).

Importing this package loads nothing heavy (no torch, no gradio).
"""
