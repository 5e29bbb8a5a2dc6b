"""``fundus-batch``: archive-scale segmentation on Ray Data, resumable, with a results table.

The per-image work is ``fundus-infer``'s own (:func:`fundus_vessels.runtime.jobs.run_job` through
:func:`~fundus_vessels.runtime.jobs.segment_job`, with the settings of :func:`~fundus_vessels.runtime.jobs.setup`),
run by a Ray Data actor pool: one model session per actor. Ray is imported only here, lazily
(the ``ray`` extra).
"""
