"""The model commands of ``ligan``: one module per command group, each with
``register(subparsers, settings)``; ``setup.cli`` wires them into the entry point.

``bundle`` (``generate``, ``bundle …``; ``importers``: ``bundle import``), ``lineup`` (``invert``,
``fillers``, ``refine``, ``interpolate``, ``lineup analyse``), ``research`` (``transition``,
``mix``, ``face``), ``attributes`` (``attributes …``, ``train attributes``), ``train``
(``train stylegan2|encoder|metrics``), ``dataset`` (``dataset build|merge|report|submit``).
The numeric work they call lives in ``models/``; failures meant for the user raise
:class:`setup.entry.CommandError`.
"""
