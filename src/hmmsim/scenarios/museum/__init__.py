"""The race museum's scenarios: one module each, ``group=MUSEUM_GROUP``.

Every module of this package is imported, in name order, when a scenario
name is not found among the built-ins (:data:`hmmsim.scenarios.MUSEUM_PACKAGE`);
``check --all`` and ``list`` never import them.  A module here registers
scenarios whose ``group`` is :data:`~hmmsim.scenarios.base.MUSEUM_GROUP`
(for a race: ``race(..., battery=False, group=MUSEUM_GROUP)``, whose
``race_scenario`` then has that group; user drivers get only the matrix's
races, and ``all_races()`` lists only those), and the
exhibit that pins one lives in ``hmmsim/museum/exhibits/<slug>.py``.
"""
