"""The run report (``stages/report.py`` builds it; ``content.build_report`` is the page).

- ``kinds``:    how a number's settings were chosen (ground-truth-free / tuned on calib / oracle);
- ``reading``:  what the stages wrote (JSON, training logs, mmseg scalars), ``None`` + reason when unreadable;
- ``charts``:   curves, per-class bars, the threshold sweep, the contact sheet (matplotlib Agg);
- ``page``:     the self-contained HTML writer;
- ``run``:      a work directory's config, results and manifests (:class:`RunRecord`);
- ``sections``, ``examples``, ``content``: the report's sections, its example images, the page.

The report never invents a number: a value that cannot be read is shown as "not available" with the reason.
"""
